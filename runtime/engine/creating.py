"""Turning a service into a created (not yet started) container: checks, networks, volumes, files."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from runtime import labels as L
from runtime.containerspec import (
    CreateParams,
    FileCopy,
    api_too_old,
    create_params,
    files_archive,
    name_conflict,
    platform_mismatch,
)
from runtime.engine.resources import StackResources
from runtime.engine.session import EngineSession
from runtime.errors import EngineError


class ContainerFactory:
    """Creates the container of a service from ``containerspec.create_params``."""

    def __init__(self, session: EngineSession, resources: StackResources) -> None:
        self.session = session
        self.resources = resources
        self._engine_version: dict[str, Any] | None = None  # the engine's `version` answer, read once

    def make(self, service: str, image_id: str, config_hash: str) -> str:
        """Create the service's container (its files copied in); returns its id. Engine errors
        are docker-py's: the caller names the action they failed."""
        session, api = self.session, self.session.api
        params: CreateParams = create_params(
            session.stack, service, image_id, config_hash, release=session.desired.release,
            attached=self._attached(service), extra=session.extra_labels,
        )
        # Networks first: a service without `networks:` joins `<project>_default`, which the
        # plan may not list; creating it here keeps a container create from failing on it.
        self._check(service, params)
        for net in (params.first_network, *params.more_networks):
            if net:
                self.resources.ensure_network(net)
        self.resources.ensure_mounted_volumes(service)
        host_config = api.create_host_config(**params.host)
        host_config.update(params.host_raw)
        links = list(params.links) or None
        networking = None

        def endpoint(net: str) -> dict[str, Any]:
            return params.endpoints.get(net) or {"aliases": list(params.aliases)}

        if params.first_network:
            networking = api.create_networking_config(
                {params.first_network: api.create_endpoint_config(**endpoint(params.first_network), links=links)}
            )
        # Detached, as `docker compose up -d` creates them: nothing attaches to stdin/stdout/stderr.
        created = api.create_container(
            params.image, name=params.name, host_config=host_config, networking_config=networking, detach=True,
            **params.container,
        )
        cid: str = created["Id"]
        for net in params.more_networks:
            api.connect_container_to_network(cid, net, **endpoint(net), links=links)
        if params.files:
            self._copy_files(service, cid, params.files)
        return cid

    def _attached(self, service: str) -> dict[str, str]:
        """Container ids of the services this one joins via network_mode/ipc/pid service:X / volumes_from."""
        stack = self.session.stack
        spec = stack.service(service)
        wanted = {vf.service for vf in spec.volumes_from}
        wanted.update(spec.joined_services)
        out: dict[str, str] = {}
        for other in wanted:
            rows = self.session.api.containers(all=True, filters={"label": [f"{L.STACK}={stack.project}",
                                                                             f"{L.SERVICE}={other}"]})
            if rows:
                out[other] = rows[0]["Id"]
        return out

    def _copy_files(self, service: str, cid: str, copies: Sequence[FileCopy]) -> None:
        """Write the service's secrets and configs into its created container (before it starts)."""
        entries = []
        for copy in copies:
            if copy.content is not None:
                entries.append((copy, copy.content))
                continue
            try:
                with open(copy.path or "", "rb") as fh:
                    entries.append((copy, fh.read()))
            except OSError as exc:
                raise EngineError(f"Could not read {copy.path} for service {service!r}: "
                                  f"{exc.strerror or exc}.", service=service) from exc
        self.session.api.put_archive(cid, "/", files_archive(entries))

    def _check(self, service: str, params: CreateParams) -> None:
        """Refuse a create the engine would fail on obscurely, or that would take what is not ours."""
        stack, api = self.session.stack, self.session.api
        spec = stack.service(service)
        if spec.platform or spec.annotations or any(m.subpath for m in spec.volumes):
            if self._engine_version is None:
                self._engine_version = dict(api.version())
            version = self._engine_version
            problem = api_too_old(spec, str(version.get("ApiVersion") or "0"))
            if spec.platform and problem is None:
                problem = platform_mismatch(spec.platform, str(version.get("Os") or "linux"),
                                            str(version.get("Arch") or ""))
            if problem:
                raise EngineError(problem, service=service)
        if spec.container_name:
            rows = api.containers(all=True, filters={"name": f"^/{params.name}$"})
            owner = rows[0].get("Labels") or {} if rows else None
            problem = name_conflict(params.name, stack.project, service, owner)
            if problem:
                raise EngineError(problem, service=service)
