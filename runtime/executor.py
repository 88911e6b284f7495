"""The only code that calls the Docker engine on behalf of a stack.

``Executor.observe()`` reads the engine into an ``ObservedState`` (one filtered list call for
the stack's containers, inspect only for what the list lacks); ``Executor.execute(actions)``
turns planner actions into engine calls and returns one ``ActionResult`` each. Independent
Create/Start/Recreate actions of one dependency stage run in parallel; everything else runs in
order. docker-py errors never escape: each becomes an ``EngineError`` sentence naming the
service and the action.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Literal, Protocol, assert_never, cast

import docker
import docker.errors

from runtime import labels as L
from runtime.actions import (
    Action,
    ActionResult,
    Build,
    BuildReport,
    Create,
    EnsureNetwork,
    EnsureVolume,
    Pull,
    Recreate,
    Remove,
    RemoveImage,
    RemoveNetwork,
    RemoveVolume,
    Restart,
    Start,
    Stop,
    Wait,
)
from runtime.buildctx import context_tar
from runtime.compose.model import ServiceHook, StackSpec
from runtime.containerspec import (
    CreateParams,
    FileCopy,
    api_too_old,
    create_params,
    files_archive,
    name_conflict,
    platform_mismatch,
    service_container_name,
    stack_networks,
)
from runtime.errors import ArmstackError, DiskFullError, EngineError, EngineUnreachable
from runtime.imagelabels import label_image
from runtime.observed import ContainerStatus, Desired, ObservedContainer, ObservedImage, ObservedState
from runtime.ownership import Kind, check_existing, owner_of, removable
from runtime.resourcespec import network_create_kwargs, volume_create_kwargs

_STEP = re.compile(r"^Step (\d+)/(\d+)\s*:")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})\s*$")
_LAYER = re.compile(r"^\s*---> ([0-9a-f]{12,64})\s*$")   # the image a build step produced
_PARALLEL = (Create, Start, Recreate)
_MAX_WORKERS = 4


class BuildOutput(Protocol):
    """Where build output goes (``runtime.logs.LogPresenter`` fits)."""

    def line(self, service: str, text: str, *, stream: str = ..., time: float | None = ...) -> None: ...


def _ts(value: str | None) -> float | None:
    """Engine RFC3339 timestamps (nanoseconds, 'Z') to epoch seconds; the zero time is None."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    tz = ""
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, rest = frac.partition(sign)
            tz = sign + rest
    if not tz and value.endswith("Z"):
        tz = "+00:00"
    try:
        base = datetime.fromisoformat(head + (tz or "+00:00")).timestamp()
    except ValueError:
        return None
    return base + (float("0." + frac) if frac.isdigit() else 0.0)


def _health_from_status(status: str) -> str | None:
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


def _looks_offline(text: str) -> bool:
    t = text.lower()
    return any(s in t for s in ("no such host", "dial tcp", "timeout", "connection refused", "network is unreachable"))


def _looks_disk_full(text: str) -> bool:
    t = text.lower()
    return "no space left on device" in t or "enospc" in t


class Executor:
    """Runs planner actions against one engine for one desired stack."""

    def __init__(
        self,
        client: docker.DockerClient,
        desired: Desired,
        *,
        output: BuildOutput | None = None,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.client = client
        self.api = client.api
        self.desired = desired
        self.output = output
        self.extra_labels = dict(extra_labels or {})   # RuntimeSettings.extra_labels
        self._stopping: set[str] = set()
        self._networks_seen: set[str] = set()
        self._volumes_seen: set[str] = set()
        self._warned: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        # service -> monotonic time its old container was stopped for an update whose new
        # container is created in a later round (kill/delete-then-download): downtime spans rounds.
        self._down_since: dict[str, float] = {}
        self._engine_version: dict[str, Any] | None = None  # the engine's `version` answer, read once

    # -- observing --------------------------------------------------------------------------

    @property
    def stack(self) -> StackSpec:
        return self.desired.stack

    def expected_stop(self, container_id: str) -> bool:
        """True if the runtime itself stopped this container (its ``die`` is not a crash)."""
        with self._lock:
            return any(container_id.startswith(c) or c.startswith(container_id) for c in self._stopping)

    def forget_stop(self, container_id: str) -> None:
        with self._lock:
            self._stopping.discard(container_id)

    def observe(self) -> ObservedState:
        try:
            nets = self.api.networks()
            vols = self.api.volumes().get("Volumes") or []
            return ObservedState(
                containers=tuple(self._observe_containers()),
                images=tuple(self._observe_images()),
                networks=frozenset(n["Name"] for n in nets),
                volumes=frozenset(v["Name"] for v in vols),
                network_owners=tuple(sorted((n["Name"], owner_of(n.get("Labels"))) for n in nets)),
                volume_owners=tuple(sorted((v["Name"], owner_of(v.get("Labels"))) for v in vols)),
            )
        except docker.errors.DockerException as exc:
            raise EngineError(f"Could not read the state of stack {self.stack.project!r} from the engine: "
                              f"{_describe(exc)}.") from exc
        except OSError as exc:  # requests' ConnectionError is an OSError
            raise EngineUnreachable(f"The Docker engine is unreachable: {exc}.") from exc

    def _observe_containers(self) -> Iterator[ObservedContainer]:
        # Only containers this runtime created carry a config hash; the stack label alone could
        # come from somewhere else (a probe, a hand-made container given the label).
        rows = self.api.containers(all=True, filters={"label": [f"{L.STACK}={self.stack.project}", L.CONFIG_HASH]})
        for row in rows:
            labels = row.get("Labels") or {}
            state = row.get("State") or "created"
            status_text = row.get("Status") or ""
            info: dict[str, Any] = {}
            try:
                # The list lacks exit code, OOM and timestamps; one inspect each is cheap on a socket.
                info = self.api.inspect_container(row["Id"])
            except docker.errors.NotFound:
                continue
            st = info.get("State") or {}
            health = (st.get("Health") or {}).get("Status") or _health_from_status(status_text)
            # Inspect is newer than the list row: a container may have died in between.
            state = st.get("Status") or state
            running = state in ("running", "restarting", "paused")
            name = (row.get("Names") or ["/" + row["Id"][:12]])[0].lstrip("/")
            yield ObservedContainer(
                id=row["Id"],
                name=name,
                service=labels.get(L.SERVICE, ""),
                config_hash=labels.get(L.CONFIG_HASH, ""),
                image_id=row.get("ImageID") or info.get("Image", ""),
                status=cast(ContainerStatus, state),
                health=health if health in ("starting", "healthy", "unhealthy") else None,  # type: ignore[arg-type]
                exit_code=None if running else st.get("ExitCode"),
                oom_killed=bool(st.get("OOMKilled")),
                started_at=_ts(st.get("StartedAt")),
                finished_at=None if running else _ts(st.get("FinishedAt")),
                created_at=float(row.get("Created") or 0),
            )

    def _observe_images(self) -> Iterator[ObservedImage]:
        for img in self.api.images(all=False):
            tags = tuple(t for t in (img.get("RepoTags") or ()) if t and t != "<none>:<none>")
            yield ObservedImage(
                id=img["Id"],
                tags=tags,
                labels=tuple(sorted((img.get("Labels") or {}).items())),
                size=int(img.get("Size") or 0),
                created_at=float(img.get("Created") or 0),
            )

    # -- executing --------------------------------------------------------------------------

    def execute(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Run ``actions`` stage by stage (``planner.stages``); a failed service gets no further actions."""
        from runtime.planner import stages

        results: list[ActionResult] = []
        failed: set[str] = set()
        for stage in stages(actions, self.stack):
            todo = [a for a in stage if getattr(a, "service", None) not in failed]
            for a in stage:
                if a not in todo:
                    svc = getattr(a, "service", "?")
                    skipped = ArmstackError(f"Skipped: an earlier action for service {svc!r} failed.")
                    results.append(ActionResult(a, False, skipped))
            if len(todo) > 1 and all(isinstance(a, _PARALLEL) for a in todo):
                # One stage holds no dependency between its services: start them together.
                with ThreadPoolExecutor(max_workers=min(_MAX_WORKERS, len(todo))) as pool:
                    batch = list(pool.map(self._run_one, todo))
            else:
                batch = []
                for a in todo:
                    r = self._run_one(a)
                    batch.append(r)
                    if not r.ok and r.service:
                        failed.add(r.service)
            for r in batch:
                if not r.ok and r.service:
                    failed.add(r.service)
            results.extend(batch)
        return results

    def _run_one(self, action: Action) -> ActionResult:
        t0 = time.monotonic()
        made: list[str] = []
        try:
            extra: dict[str, Any] = self._dispatch_made(action, made) or {}
        except EngineError as exc:
            return ActionResult(action, False, exc, time.monotonic() - t0, images=tuple(made))
        return ActionResult(action, True, None, time.monotonic() - t0, images=tuple(made), **extra)

    def _dispatch_made(self, action: Action, made: list[str]) -> dict[str, Any] | None:
        """Run one action; a kind missing here is a mypy error (``assert_never``), not a KeyError."""
        match action:
            case EnsureNetwork():
                self._ensure_network(action)
                return None
            case EnsureVolume():
                self._ensure_volume(action)
                return None
            case Build():
                return self._build(action, made)
            case Pull():
                self._pull(action)
                return None
            case Create():
                return self._create(action)
            case Start():
                return self._start(action)
            case Restart():
                return self._restart(action)
            case Recreate():
                return self._recreate(action)
            case Remove():
                self._remove(action)
                return None
            case Stop():
                return self._stop(action)
            case RemoveImage():
                return self._remove_image(action)
            case RemoveNetwork():
                self._remove_network(action)
                return None
            case RemoveVolume():
                self._remove_volume(action)
                return None
            case Wait():
                return None   # reported, not executed
            case _:
                assert_never(action)

    def _engine(self, what: str, fn: Callable[[], Any], service: str | None = None) -> Any:
        """Call the engine, turning every docker-py failure into one EngineError sentence."""
        try:
            return fn()
        except docker.errors.DockerException as exc:
            text = _describe(exc)
            if _looks_disk_full(text):
                raise DiskFullError(f"Could not {what}: the engine's disk is full ({text}).", service=service) from exc
            raise EngineError(f"Could not {what}: {text}.", service=service) from exc
        except OSError as exc:
            raise EngineUnreachable(f"Could not {what}: the Docker engine is unreachable ({exc}).",
                                    service=service) from exc

    def _warn(self, text: str) -> None:
        """A warning of the runtime itself (the presenter's ``runtime`` line when there is one)."""
        if self.output is None:
            return
        runtime = getattr(self.output, "runtime", None)
        if callable(runtime):
            runtime(text, level="warning")
        else:
            self.output.line("armstack", f"warning: {text}", stream="runtime")

    def _vet(self, kind: Kind, name: str, labels: Mapping[str, str] | None) -> None:
        """Refuse an existing object another project owns; warn once about an unlabelled one."""
        warning = check_existing(kind, name, labels, self.stack.project)
        if warning is not None and (kind, name) not in self._warned:
            self._warned.add((kind, name))
            self._warn(warning)

    def _ensure_network(self, a: EnsureNetwork) -> None:
        self.ensure_network(a.name)
        return None

    def ensure_network(self, name: str) -> None:
        """Create the engine network ``name`` unless it exists (idempotent, remembered).

        An existing one is used only if it is the project's or unlabelled (``runtime.ownership``).
        """
        if name in self._networks_seen:
            return
        stack_name = next((n for n in stack_networks(self.stack) if self.stack.network_name(n) == name), name)
        spec = next((n for n in self.stack.networks if n.name == stack_name), None)
        external = spec is not None and spec.external

        def make() -> None:
            found = [n for n in self.api.networks(names=[name]) if n["Name"] == name]
            if found:
                if not external:
                    self._vet("network", name, found[0].get("Labels"))
                return
            if external:   # as compose: an external network is never created
                raise EngineError(f"The network {name!r} is declared as external, but could not be found. "
                                  f"Create it first (docker network create {name}) or remove 'external'.")
            self.api.create_network(name, **network_create_kwargs(self.stack.project, stack_name, spec,
                                                                  self.extra_labels))

        self._engine(f"create network {name!r}", make)
        self._networks_seen.add(name)

    def _ensure_volume(self, a: EnsureVolume) -> None:
        self.ensure_volume(a.name)
        return None

    def ensure_volume(self, name: str) -> None:
        """Create the engine volume ``name`` unless it exists (remembered); vet an existing one."""
        if name in self._volumes_seen:
            return
        stack_name = next((v.name for v in self.stack.volumes if self.stack.volume_name(v.name) == name), None)
        if stack_name is None:   # mounted without a top-level entry: <project>_<source>
            stack_name = next((m.source for s in self.stack.services for m in s.volumes
                               if m.type == "volume" and m.source and self.stack.volume_name(m.source) == name),
                              name)
        spec = next((v for v in self.stack.volumes if v.name == stack_name), None)
        external = spec is not None and spec.external

        def make() -> None:
            try:
                found = self.api.inspect_volume(name)
            except docker.errors.NotFound:
                found = None
            if found is not None:
                if not external:
                    self._vet("volume", name, found.get("Labels"))
                return
            if external:   # as compose: an external volume is never created
                raise EngineError(f"The volume {name!r} is declared as external, but could not be found. "
                                  f"Create it first (docker volume create {name}) or remove 'external'.")
            self.api.create_volume(name, **volume_create_kwargs(self.stack.project, stack_name, spec,
                                                                self.extra_labels))

        self._engine(f"create volume {name!r}", make)
        self._volumes_seen.add(name)

    def _ensure_mounted_volumes(self, service: str) -> None:
        """Vet (or create) every named volume a container is about to mount: a name proves nothing."""
        spec = self.stack.service(service)
        for m in spec.volumes:
            if m.type == "volume" and m.source:
                self.ensure_volume(self.stack.volume_name(m.source))

    def _removable(self, kind: Kind, name: str, labels: Mapping[str, str] | None) -> None:
        if not removable(labels, self.stack.project):
            owner = owner_of(labels)
            whose = f"belongs to project {owner!r}" if owner else "is not labelled as any project's"
            raise EngineError(f"The {kind} {name!r} was not removed: it {whose}, not {self.stack.project!r}. "
                              f"Remove it by hand if it is no longer needed.")

    def _remove_network(self, a: RemoveNetwork) -> None:
        def run() -> None:
            try:
                self._removable("network", a.name, self.api.inspect_network(a.name).get("Labels"))
                self.api.remove_network(a.name)
            except docker.errors.NotFound:
                pass

        self._engine(f"remove network {a.name!r}", run)
        self._networks_seen.discard(a.name)
        return None

    def _remove_volume(self, a: RemoveVolume) -> None:
        def run() -> None:
            try:
                self._removable("volume", a.name, self.api.inspect_volume(a.name).get("Labels"))
                self.api.remove_volume(a.name)
            except docker.errors.NotFound:
                pass

        self._engine(f"remove volume {a.name!r}", run)
        self._volumes_seen.discard(a.name)
        return None

    # -- images -----------------------------------------------------------------------------

    def _build(self, a: Build, made: list[str] | None = None) -> dict[str, Any]:
        """Build and tag the service's image; ``made`` collects the ids of the images it creates."""
        made = [] if made is None else made
        spec = self.stack.service(a.service)
        if spec.build is None:
            raise EngineError(f"Could not build {a.service!r}: the service has no build section.", service=a.service)
        build = spec.build
        t0 = time.monotonic()
        # A stream, not the whole context in memory; a context that cannot be sent raises
        # BuildContextError (an EngineError) here: a failed build of this service.
        context = context_tar(build, service=a.service)
        steps = cached = 0
        image_id: str | None = None
        errors: list[str] = []

        # The file's build labels first: the runtime's ownership labels always win. They are put
        # on the built image by one commit (runtime.imagelabels), not as the engine's LABEL steps.
        labels = {**dict(build.labels), **self.extra_labels, L.IMAGE_STACK: self.stack.project,
                  L.IMAGE_SERVICE: a.service, L.BUILD_HASH: a.build_hash}
        label_steps = tuple(f"LABEL {k}=" for k in labels)
        in_label = from_step = reused = False
        build_labels: dict[str, str] = {}   # labels the build itself applies (see below)

        def run() -> None:
            nonlocal steps, cached, image_id, in_label, from_step, reused
            # No tag here: the image is tagged below, only once the build finished and its id is
            # known, so an interrupted build (power cut, error) can never leave the service's tag
            # on a half-built image. Its finished steps stay as untagged cache layers.
            stream = self.api.build(
                fileobj=context, custom_context=True, dockerfile=build.dockerfile, buildargs=dict(build.args),
                target=build.target, rm=True, forcerm=True, decode=True,
                labels=build_labels, shmsize=build.shm_size,
                extra_hosts=dict(build.extra_hosts) or None, network_mode=build.network,
                nocache=build.no_cache, pull=build.pull,
            )
            for chunk in stream:
                if "error" in chunk:
                    errors.append(str(chunk.get("error", "")).strip())
                    continue
                if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                    image_id = chunk["aux"]["ID"]
                text = chunk.get("stream")
                if not text:
                    continue
                for line in str(text).splitlines():
                    if not line.strip():
                        continue
                    built = _BUILT.match(line.strip())
                    if built and image_id is None:
                        image_id = built.group(1)
                    m = _STEP.match(line)
                    layer = _LAYER.match(line)
                    if m:
                        # The legacy builder appends our labels as extra LABEL steps; they are
                        # not the Dockerfile's, so they count neither as steps nor cache hits.
                        instruction = line[m.end():].strip()
                        in_label = instruction.startswith(label_steps)
                        from_step = instruction.upper().startswith("FROM ")
                        reused = False
                        if not in_label:
                            steps += 1
                    elif line.strip() == "---> Using cache":
                        reused = True
                        if not in_label:
                            cached += 1
                    elif layer and not from_step and not reused:
                        made.append(layer.group(1))   # a new layer: neither the base nor a cache hit
                    if self.output is not None:
                        self.output.line(a.service, line.rstrip(), stream="build")

        try:
            self._engine(f"build the image of service {a.service!r}", run, a.service)
        except EngineError:
            if context.error is not None:  # not the engine: the context failed while being sent
                raise context.error from None
            raise
        if errors:
            text = errors[-1]
            if _looks_disk_full(text):
                raise DiskFullError(f"Could not build the image of service {a.service!r}: the disk is full ({text}).",
                                    service=a.service)
            raise EngineError(f"Could not build the image of service {a.service!r}: {text}.", service=a.service)
        if image_id is None:
            raise EngineError(f"Could not build the image of service {a.service!r}: the engine did not say which "
                              "image it built.", service=a.service)
        if image_id not in made:
            made.append(image_id)
        unlabelled = image_id
        labelled = self._engine(f"label the image of service {a.service!r}",
                                lambda: label_image(self.api, unlabelled, labels), a.service)
        if labelled is None:
            # An image without a command cannot be labelled by a commit: its build labels it, all
            # of its other steps now taken from the cache.
            build_labels.update(labels)
            counted = steps, cached   # the report counts the Dockerfile's steps once
            context, image_id, errors[:] = context_tar(build, service=a.service), None, []
            self._engine(f"build the image of service {a.service!r}", run, a.service)
            steps, cached = counted
            if errors or image_id is None:
                raise EngineError(f"Could not label the image of service {a.service!r}: "
                                  f"{errors[-1] if errors else 'the engine did not say which image it built'}.",
                                  service=a.service)
            labelled = image_id
        if labelled not in made:
            made.append(labelled)
        repo, tag = _split_ref(a.image)
        built_id = labelled
        self._engine(f"tag the image of service {a.service!r} as {a.image!r}",
                     lambda: self.api.tag(built_id, repo, tag=tag), a.service)
        report = BuildReport(a.service, steps, cached, round(time.monotonic() - t0, 3))
        return {"build": report}

    def _pull(self, a: Pull) -> None:
        repo, tag = _split_ref(a.image)
        try:
            self.api.pull(repo, tag=tag)
        except (docker.errors.DockerException, OSError) as exc:
            text = _describe(exc)
            if _looks_disk_full(text):
                raise DiskFullError(f"Could not pull image {a.image!r} for service {a.service!r}: the disk is full "
                                    f"({text}).", service=a.service) from exc
            hint = (" No registry is reachable from this engine: build the image locally or load it with "
                    "`docker load`." if _looks_offline(text) or isinstance(exc, docker.errors.APIError) else "")
            raise EngineError(f"Could not pull image {a.image!r} for service {a.service!r}: {text}.{hint}",
                              service=a.service) from exc
        return None

    # -- containers -------------------------------------------------------------------------

    def _attached(self, service: str) -> dict[str, str]:
        """Container ids of the services this one joins via network_mode/ipc/pid service:X / volumes_from."""
        spec = self.stack.service(service)
        wanted = {vf.service for vf in spec.volumes_from}
        wanted.update(spec.joined_services)
        out: dict[str, str] = {}
        for other in wanted:
            rows = self.api.containers(all=True, filters={"label": [f"{L.STACK}={self.stack.project}",
                                                                     f"{L.SERVICE}={other}"]})
            if rows:
                out[other] = rows[0]["Id"]
        return out

    def _make_container(self, service: str, image_id: str, config_hash: str) -> str:
        params: CreateParams = create_params(
            self.stack, service, image_id, config_hash, release=self.desired.release,
            attached=self._attached(service), extra=self.extra_labels,
        )
        # Networks first: a service without `networks:` joins `<project>_default`, which the
        # plan may not list; creating it here keeps a container create from failing on it.
        self._check_create(service, params)
        for net in (params.first_network, *params.more_networks):
            if net:
                self.ensure_network(net)
        self._ensure_mounted_volumes(service)
        host_config = self.api.create_host_config(**params.host)
        host_config.update(params.host_raw)
        links = list(params.links) or None
        networking = None

        def endpoint(net: str) -> dict[str, Any]:
            return params.endpoints.get(net) or {"aliases": list(params.aliases)}

        if params.first_network:
            networking = self.api.create_networking_config(
                {params.first_network: self.api.create_endpoint_config(**endpoint(params.first_network), links=links)}
            )
        # Detached, as `docker compose up -d` creates them: nothing attaches to stdin/stdout/stderr.
        created = self.api.create_container(
            params.image, name=params.name, host_config=host_config, networking_config=networking, detach=True,
            **params.container,
        )
        cid: str = created["Id"]
        for net in params.more_networks:
            self.api.connect_container_to_network(cid, net, **endpoint(net), links=links)
        if params.files:
            self._copy_files(service, cid, params.files)
        return cid

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
        self.api.put_archive(cid, "/", files_archive(entries))

    # -- checks before a create that need the engine (container_name, platform) --------------

    def _check_create(self, service: str, params: CreateParams) -> None:
        """Refuse a create the engine would fail on obscurely, or that would take what is not ours."""
        spec = self.stack.service(service)
        if spec.platform or spec.annotations or any(m.subpath for m in spec.volumes):
            if self._engine_version is None:
                self._engine_version = dict(self.api.version())
            version = self._engine_version
            problem = api_too_old(spec, str(version.get("ApiVersion") or "0"))
            if spec.platform and problem is None:
                problem = platform_mismatch(spec.platform, str(version.get("Os") or "linux"),
                                            str(version.get("Arch") or ""))
            if problem:
                raise EngineError(problem, service=service)
        if spec.container_name:
            rows = self.api.containers(all=True, filters={"name": f"^/{params.name}$"})
            owner = rows[0].get("Labels") or {} if rows else None
            problem = name_conflict(params.name, self.stack.project, service, owner)
            if problem:
                raise EngineError(problem, service=service)

    def _create(self, a: Create) -> dict[str, Any]:
        def run() -> str:
            cid = self._make_container(a.service, a.image_id, a.config_hash)
            self.api.start(cid)
            return cid

        cid = self._engine(f"create and start a container for service {a.service!r}", run, a.service)
        self.run_hooks(a.service, cid, "post_start")
        # After a delete-then-download the Create is the second half of a replacement.
        return {"container_id": cid, "downtime": self._down_for(a.service)}

    def _start(self, a: Start) -> dict[str, Any]:
        self._engine(f"start the container of service {a.service!r}", lambda: self.api.start(a.container_id), a.service)
        self.forget_stop(a.container_id)
        self.run_hooks(a.service, a.container_id, "post_start")
        return {"container_id": a.container_id}

    def _grace(self, service: str) -> int:
        try:
            return max(0, int(round(self.stack.service(service).stop_grace_period)))
        except KeyError:
            return 10

    def _restart(self, a: Restart) -> dict[str, Any]:
        with self._lock:
            self._stopping.add(a.container_id)
        try:
            self._engine(f"restart the container of service {a.service!r}",
                         lambda: self.api.restart(a.container_id, timeout=self._grace(a.service)), a.service)
        finally:
            self.forget_stop(a.container_id)
        self.run_hooks(a.service, a.container_id, "post_start")
        return {"container_id": a.container_id}

    def run_hooks(self, service: str, container_id: str, which: Literal["post_start", "pre_stop"]) -> None:
        """Run the service's ``post_start`` / ``pre_stop`` hooks in its container, in order.

        As docker compose: each is an exec whose output is shown under the service's name; one
        that exits non-zero fails the start (or stop) with an EngineError and the rest are skipped.
        A container that is already gone or stopped has nothing to run a pre_stop hook in.
        """
        try:
            hooks = getattr(self.stack.service(service), which)
        except KeyError:   # an orphan: not in the desired stack
            return
        if hooks and which == "pre_stop" and not self._running(container_id):
            return
        for hook in hooks:
            def run(hook: ServiceHook = hook) -> int:
                exec_id = self.api.exec_create(
                    container_id, list(hook.command), stdout=True, stderr=True, privileged=hook.privileged,
                    user=hook.user or "", environment=[f"{k}={v}" for k, v in hook.environment] or None,
                    workdir=hook.working_dir,
                )["Id"]
                for chunk in self.api.exec_start(exec_id, stream=True, demux=True):
                    for stream, data in zip(("stdout", "stderr"), chunk, strict=True):
                        if data and self.output is not None:
                            for text in data.decode(errors="replace").splitlines():
                                self.output.line(service, f"{which} hook: {text}", stream=stream)
                return int(self.api.exec_inspect(exec_id).get("ExitCode") or 0)

            try:
                code = self._engine(f"run the {which} hook {' '.join(hook.command)!r} of service {service!r}", run,
                                    service)
            except EngineError:
                if which == "pre_stop" and not self._running(container_id):
                    return
                raise
            if code != 0:
                raise EngineError(f"The {which} hook {' '.join(hook.command)!r} of service {service!r} exited with "
                                  f"status {code}; fix the hook's command (it runs in the service's container), "
                                  f"or remove it from '{which}'.", service=service)

    def _running(self, container_id: str) -> bool:
        try:
            return bool(self.api.inspect_container(container_id)["State"]["Running"])
        except docker.errors.DockerException:
            return False

    def stop_and_remove(self, service: str, container_id: str, *, remove: bool = True) -> None:
        self.run_hooks(service, container_id, "pre_stop")
        with self._lock:
            self._stopping.add(container_id)

        def run() -> None:
            try:
                self.api.stop(container_id, timeout=self._grace(service))
                if remove:
                    # v=False: named volumes hold data; they go only with an explicit `down -v`.
                    self.api.remove_container(container_id, v=False, force=True)
            except docker.errors.NotFound:
                pass

        self._engine(f"{'remove' if remove else 'stop'} the container of service {service!r}", run, service)

    def _remove(self, a: Remove) -> None:
        if a.reason == "update":
            self._mark_down(a.service)
        self.stop_and_remove(a.service, a.container_id)
        return None

    def _stop(self, a: Stop) -> dict[str, Any]:
        if a.reason == "update":
            self._mark_down(a.service)
        self.stop_and_remove(a.service, a.container_id, remove=False)
        return {"container_id": a.container_id}

    def _mark_down(self, service: str) -> None:
        with self._lock:
            self._down_since.setdefault(service, time.monotonic())

    def _down_for(self, service: str) -> float | None:
        """Seconds since an update took the service down (None if none did), and forget it."""
        with self._lock:
            since = self._down_since.pop(service, None)
        return None if since is None else round(time.monotonic() - since, 3)

    def _remove_image(self, a: RemoveImage) -> dict[str, Any]:
        def run() -> bool:
            try:
                # noprune=False: the image's untagged parent layers go too, which is the point
                # of delete-then-download (room on the card), even though it costs the cache.
                self.api.remove_image(a.image_id, force=False, noprune=False)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:   # still used or tagged elsewhere: not ours to force
                    if self.output is not None:
                        self.output.line(a.service, f"image {a.image_id[:19]} kept: {_describe(exc)}",
                                         stream="build")
                    return False
                raise

        self._engine(f"remove the old image of service {a.service!r}", run, a.service)
        return {}

    def _recreate(self, a: Recreate) -> dict[str, Any]:
        # The new image exists already (Build/Pull ran earlier in the plan): downtime is stop→start,
        # or since the update stopped it in an earlier round (kill-then-download).
        self._mark_down(a.service)
        try:
            self.stop_and_remove(a.service, a.container_id)
        except EngineError:
            self._down_for(a.service)   # the old container still runs: not down
            raise

        def run() -> str:
            cid = self._make_container(a.service, a.image_id, a.config_hash)
            self.api.start(cid)
            return cid

        # A failed create keeps the mark: the Create of a later round ends the same downtime.
        cid = self._engine(f"recreate the container of service {a.service!r}", run, a.service)
        self.run_hooks(a.service, cid, "post_start")
        return {"container_id": cid, "downtime": self._down_for(a.service)}

    # -- whole-stack helpers (down, graceful stop) ------------------------------------------

    def stop_stack(self, observed: ObservedState, *, remove: bool = False) -> list[str]:
        """Stop (optionally remove) the stack's containers, dependents first; returns error sentences.

        Services of one dependency level stop in parallel: with a 10 s grace period each, a
        serial stop of a deep stack would take minutes on a device being shut down.
        """
        from runtime.planner import stages

        candidates = [c for c in observed.containers if remove or c.running]
        errors: list[str] = []

        def one(a: Remove) -> None:
            try:
                self.stop_and_remove(a.service, a.container_id, remove=remove)
            except EngineError as exc:
                errors.append(str(exc))

        for stage in stages([Remove(c.service, c.id, reason="stop") for c in candidates], self.stack):
            group = [a for a in stage if isinstance(a, Remove)]
            with ThreadPoolExecutor(max_workers=max(1, min(_MAX_WORKERS, len(group)))) as pool:
                list(pool.map(one, group))
        return errors

    def remove_networks(self) -> list[str]:
        errors: list[str] = []
        for net in self.api.networks(filters={"label": f"{L.STACK}={self.stack.project}"}):
            try:
                self.api.remove_network(net["Id"])
            except docker.errors.DockerException as exc:
                errors.append(f"Could not remove network {net['Name']!r}: {_describe(exc)}.")
        return errors

    def remove_volumes(self) -> list[str]:
        errors: list[str] = []
        vols = self.api.volumes(filters={"label": f"{L.STACK}={self.stack.project}"}).get("Volumes") or []
        for vol in vols:
            try:
                self.api.remove_volume(vol["Name"])
            except docker.errors.DockerException as exc:
                errors.append(f"Could not remove volume {vol['Name']!r}: {_describe(exc)}.")
        return errors

    def container_of(self, service: str) -> str | None:
        return service_container_name(self.stack, service)


def _split_ref(ref: str) -> tuple[str, str]:
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"
