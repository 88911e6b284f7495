"""Quick builders for specs and observed states, and an in-memory engine that applies plans."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any, assert_never

from runtime import labels
from runtime.actions import (
    Action,
    Build,
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
from runtime.compose.model import (
    BuildSpec,
    Dependency,
    Healthcheck,
    NetworkSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
    VolumeMount,
    VolumesFrom,
)
from runtime.hashing import attached_services, config_hash
from runtime.observed import Desired, ObservedContainer, ObservedImage, ObservedState, Policy
from runtime.planner import plan

PROJECT = "demo"
HEALTHCHECK = Healthcheck(test=("CMD", "true"))
ONESHOT = ("test.oneshot", "1")  # label: the fake engine runs these to completion (exit 0)
_IDS = itertools.count(1)  # container ids unique across engines, as on a real engine


def svc(
    name: str,
    image: str | None = "alpine:3.19",
    *,
    deps: Iterable[str | tuple[str, str]] = (),
    restart: str = "always",
    retries: int | None = None,
    build: bool = False,
    health: bool = False,
    oneshot: bool = False,
    net: str | None = None,
    vfrom: Iterable[str] = (),
    volumes: Iterable[str] = (),
    networks: Iterable[str] = (),
    **kw: Any,
) -> ServiceSpec:
    """A service; ``deps`` items are names (service_started) or (name, condition)."""
    dependencies = tuple(
        Dependency(d) if isinstance(d, str) else Dependency(d[0], d[1])  # type: ignore[arg-type]
        for d in deps
    )
    spec = ServiceSpec(
        name=name,
        image=None if build else image,
        build=BuildSpec(context=f"/src/{name}") if build else None,
        depends_on=dependencies,
        restart=RestartPolicy(restart, retries),  # type: ignore[arg-type]
        healthcheck=HEALTHCHECK if health else None,
        labels=(ONESHOT,) if oneshot else (),
        network_mode=f"service:{net}" if net else None,
        volumes_from=tuple(VolumesFrom(v) for v in vfrom),
        volumes=tuple(VolumeMount("volume", f"/mnt/{v}", v) for v in volumes),
        networks=tuple(networks),
    )
    return dataclasses.replace(spec, **kw) if kw else spec


def stack(*services: ServiceSpec, project: str = PROJECT, **kw: Any) -> StackSpec:
    return StackSpec(project=project, services=tuple(services), **kw)


def network(name: str, external: bool = False) -> NetworkSpec:
    return NetworkSpec(name=name, external=external)


def image(ref: str, id: str | None = None, build_hash: str | None = None) -> ObservedImage:
    tag = ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"
    lab = ((labels.BUILD_HASH, build_hash),) if build_hash is not None else ()
    return ObservedImage(id=id or f"sha256:{ref}", tags=(tag,), labels=lab)


def container(
    service: str,
    id: str | None = None,
    *,
    hash: str = "stale",
    status: str = "running",
    health: str | None = None,
    exit_code: int | None = None,
    created_at: float = 0.0,
    image_id: str = "sha256:x",
) -> ObservedContainer:
    return ObservedContainer(
        id=id or f"c-{service}",
        name=f"{PROJECT}-{service}-1",
        service=service,
        config_hash=hash,
        image_id=image_id,
        status=status,  # type: ignore[arg-type]
        health=health,  # type: ignore[arg-type]
        exit_code=exit_code,
        created_at=created_at,
    )


def build_hash_of(service: str) -> str:
    return f"bh-{service}"


def desired(st: StackSpec) -> Desired:
    """Desired state where every built service has a known build hash."""
    return Desired(st, build_hashes=tuple((s.name, build_hash_of(s.name)) for s in st.services if s.build))


def kinds(actions: Iterable[Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def of(actions: Iterable[Action], kind: Any) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


class FakeEngine:
    """Applies actions to an ObservedState the way a healthy engine would, instantly.

    New containers run (and are healthy if they have a healthcheck); oneshot services exit 0.
    """

    def __init__(self, st: StackSpec, state: ObservedState | None = None, now: float = 1000.0):
        self.stack = st
        self.state = state or ObservedState()
        self.now = now

    def _new_container(self, service: str, image_id: str, config_hash: str) -> ObservedContainer:
        spec = self.stack.service(service)
        oneshot = ONESHOT in spec.labels
        self.now += 1
        return ObservedContainer(
            id=f"n{next(_IDS)}-{service}",
            name=f"{self.stack.project}-{service}-1",
            service=service,
            config_hash=config_hash,
            image_id=image_id,
            status="exited" if oneshot else "running",
            health="healthy" if spec.healthcheck and not oneshot else None,
            exit_code=0 if oneshot else None,
            started_at=self.now,
            created_at=self.now,
        )

    def _started(self, c: ObservedContainer) -> ObservedContainer:
        spec = self.stack.service(c.service)
        if ONESHOT in spec.labels:
            return dataclasses.replace(c, status="exited", exit_code=0, health=None)
        health = "healthy" if spec.healthcheck else None
        return dataclasses.replace(c, status="running", exit_code=None, health=health, started_at=self.now)

    def apply(self, actions: Iterable[Action]) -> ObservedState:
        s = self.state
        cs = list(s.containers)
        images = list(s.images)
        nets, vols = set(s.networks), set(s.volumes)
        # What the engine's labels say: the executor labels what it creates as the project's.
        net_owners, vol_owners = dict(s.network_owners), dict(s.volume_owners)

        def replace(cid: str, new: ObservedContainer | None) -> None:
            idx = next(i for i, c in enumerate(cs) if c.id == cid)
            if new is None:
                del cs[idx]
            else:
                cs[idx] = new

        for a in actions:
            match a:
                case EnsureNetwork(name):
                    nets.add(name)
                    net_owners[name] = self.stack.project
                case EnsureVolume(name):
                    vols.add(name)
                    vol_owners[name] = self.stack.project
                case RemoveNetwork(name):
                    nets.discard(name)
                case RemoveVolume(name):
                    vols.discard(name)
                case Build(service, ref, bh):
                    images = [i for i in images if image_tag(ref) not in i.tags]
                    images.append(image(ref, id=f"sha256:{ref}-{bh}", build_hash=bh))
                case Pull(service, ref):
                    images.append(image(ref))
                case Create(service, image_id, h):
                    cs.append(self._new_container(service, image_id, h))
                case Recreate(service, cid, image_id, h):
                    replace(cid, None)
                    cs.append(self._new_container(service, image_id, h))
                case Start(service, cid) | Restart(service, cid):
                    replace(cid, self._started(next(c for c in cs if c.id == cid)))
                case Remove(service, cid):
                    replace(cid, None)
                case Stop(service, cid):
                    c = next(c for c in cs if c.id == cid)
                    replace(cid, dataclasses.replace(c, status="exited", exit_code=0, finished_at=self.now))
                case RemoveImage(service, image_id):
                    images = [i for i in images if i.id != image_id]
                case Wait():
                    pass
                case _:
                    assert_never(a)
        self.state = ObservedState(tuple(cs), tuple(images), frozenset(nets), frozenset(vols),
                                   tuple(sorted((n, o) for n, o in net_owners.items() if n in nets)),
                                   tuple(sorted((v, o) for v, o in vol_owners.items() if v in vols)))
        return self.state


def image_tag(ref: str) -> str:
    return ref if ":" in ref.rsplit("/", 1)[-1] else ref + ":latest"


def expected_hash(d: Desired, state: ObservedState, service: str) -> str | None:
    """The config hash the planner wants for a service, given the containers in ``state``."""
    st = d.stack
    img = state.image(st.image_ref(service))
    if img is None:
        return None
    attached = {}
    for t in attached_services(st.service(service)):
        c = kept_container(d, state, t)
        if c is not None:
            attached[t] = c.id
    return config_hash(st, service, img.id, attached)


def kept_container(d: Desired, state: ObservedState, service: str) -> ObservedContainer | None:
    """The container the planner keeps for a service: running, up to date, newest."""
    live = [c for c in state.containers_of(service) if c.status != "removing"]
    if not live:
        return None
    exp = expected_hash(d, state, service)
    return max(live, key=lambda c: (c.running, c.config_hash == exp, c.created_at, c.id))


def converge(
    d: Desired, state: ObservedState | None = None, policy: Policy | None = None, max_rounds: int = 50
) -> tuple[ObservedState, int, list[list[Action]]]:
    """Plan and apply until a plan holds only Waits; returns (state, applying rounds, plans)."""
    engine = FakeEngine(d.stack, state)
    plans: list[list[Action]] = []
    for rounds in range(max_rounds + 1):
        actions = plan(d, engine.state, policy or Policy(now=engine.now))
        plans.append(actions)
        if all(isinstance(a, Wait) for a in actions):
            return engine.state, rounds, plans
        engine.apply(actions)
    raise AssertionError(f"no convergence in {max_rounds} rounds; last plan: {plans[-1]}")
