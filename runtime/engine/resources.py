"""A stack's networks and volumes: created when missing, vetted when found, removed only when its own."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import docker
import docker.errors

from runtime import labels as L
from runtime.containerspec import stack_networks
from runtime.engine.session import EngineSession, describe
from runtime.errors import EngineError
from runtime.ownership import Kind, check_existing, owner_of, removable
from runtime.resourcespec import network_create_kwargs, volume_create_kwargs


class StackResources:
    """Ensures and removes the networks and volumes of one stack (remembering what exists)."""

    def __init__(self, session: EngineSession) -> None:
        self.session = session
        self._networks_seen: set[str] = set()
        self._volumes_seen: set[str] = set()
        self._warned: set[tuple[str, str]] = set()

    def _vet(self, kind: Kind, name: str, labels: Mapping[str, str] | None) -> None:
        """Refuse an existing object another project owns; warn once about an unlabelled one."""
        warning = check_existing(kind, name, labels, self.session.stack.project)
        if warning is not None and (kind, name) not in self._warned:
            self._warned.add((kind, name))
            self.session.warn(warning)

    def ensure_network(self, name: str) -> None:
        """Create the engine network ``name`` unless it exists (idempotent, remembered).

        An existing one is used only if it is the project's or unlabelled (``runtime.ownership``).
        """
        if name in self._networks_seen:
            return
        stack, api = self.session.stack, self.session.api
        stack_name = next((n for n in stack_networks(stack) if stack.network_name(n) == name), name)
        spec = next((n for n in stack.networks if n.name == stack_name), None)
        external = spec is not None and spec.external

        def find() -> tuple[bool, Mapping[str, str] | None]:
            found = [n for n in api.networks(names=[name]) if n["Name"] == name]
            return (True, found[0].get("Labels")) if found else (False, None)

        self._ensure("network", name, external, find, lambda: api.create_network(
            name, **network_create_kwargs(stack.project, stack_name, spec, self.session.extra_labels)))
        self._networks_seen.add(name)

    def ensure_volume(self, name: str) -> None:
        """Create the engine volume ``name`` unless it exists (remembered); vet an existing one."""
        if name in self._volumes_seen:
            return
        stack, api = self.session.stack, self.session.api
        stack_name = next((v.name for v in stack.volumes if stack.volume_name(v.name) == name), None)
        if stack_name is None:   # mounted without a top-level entry: <project>_<source>
            stack_name = next((m.source for s in stack.services for m in s.volumes
                               if m.type == "volume" and m.source and stack.volume_name(m.source) == name),
                              name)
        spec = next((v for v in stack.volumes if v.name == stack_name), None)
        external = spec is not None and spec.external

        def find() -> tuple[bool, Mapping[str, str] | None]:
            try:
                return True, api.inspect_volume(name).get("Labels")
            except docker.errors.NotFound:
                return False, None

        self._ensure("volume", name, external, find, lambda: api.create_volume(
            name, **volume_create_kwargs(stack.project, stack_name, spec, self.session.extra_labels)))
        self._volumes_seen.add(name)

    def _ensure(self, kind: Kind, name: str, external: bool,
                find: Callable[[], tuple[bool, Mapping[str, str] | None]], create: Callable[[], object]) -> None:
        """Vet the existing network or volume ``name`` (unless external), or create it; as compose,
        an external one is never created."""
        def make() -> None:
            exists, labels = find()
            if exists:
                if not external:
                    self._vet(kind, name, labels)
                return
            if external:
                raise EngineError(f"The {kind} {name!r} is declared as external, but could not be found. "
                                  f"Create it first (docker {kind} create {name}) or remove 'external'.")
            create()

        self.session.call(f"create {kind} {name!r}", make)

    def ensure_mounted_volumes(self, service: str) -> None:
        """Vet (or create) every named volume a container is about to mount: a name proves nothing."""
        stack = self.session.stack
        for m in stack.service(service).volumes:
            if m.type == "volume" and m.source:
                self.ensure_volume(stack.volume_name(m.source))

    def _removable(self, kind: Kind, name: str, labels: Mapping[str, str] | None) -> None:
        project = self.session.stack.project
        if not removable(labels, project):
            owner = owner_of(labels)
            whose = f"belongs to project {owner!r}" if owner else "is not labelled as any project's"
            raise EngineError(f"The {kind} {name!r} was not removed: it {whose}, not {project!r}. "
                              f"Remove it by hand if it is no longer needed.")

    def remove_network(self, name: str) -> None:
        api = self.session.api
        self._remove("network", name, api.inspect_network, api.remove_network)
        self._networks_seen.discard(name)

    def remove_volume(self, name: str) -> None:
        api = self.session.api
        self._remove("volume", name, api.inspect_volume, api.remove_volume)
        self._volumes_seen.discard(name)

    def _remove(self, kind: Kind, name: str, inspect: Callable[[str], Mapping[str, Any]],
                remove: Callable[[str], object]) -> None:
        """Remove our network or volume ``name`` (one already gone is fine; another's is refused)."""
        def run() -> None:
            try:
                self._removable(kind, name, inspect(name).get("Labels"))
                remove(name)
            except docker.errors.NotFound:
                pass

        self.session.call(f"remove {kind} {name!r}", run)

    def remove_labelled_networks(self) -> list[str]:
        """Remove every network labelled as the stack's; returns error sentences."""
        api, errors = self.session.api, []
        for net in api.networks(filters={"label": f"{L.STACK}={self.session.stack.project}"}):
            try:
                api.remove_network(net["Id"])
            except docker.errors.DockerException as exc:
                errors.append(f"Could not remove network {net['Name']!r}: {describe(exc)}.")
        return errors
