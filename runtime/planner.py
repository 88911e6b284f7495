"""The planner: desired stack + observed engine state -> the next actions. Pure: no I/O, no clock.

The supervisor loops observe -> :func:`plan` -> execute -> observe until a plan is empty or
holds only :class:`Wait` actions. So one plan only has to make *progress*, never to finish,
and it never relies on an action of the same plan having worked: anything whose input changes
in this plan is decided in the next one. Concretely:

- a container is created only once its image is on the engine (never with its Build/Pull);
- a service whose dependency (``depends_on``, ``network_mode``/``ipc``/``pid: service:X``, ``volumes_from``)
  gets a container action in this plan waits for the next plan, because the condition it
  depends on (running, healthy, the joined container's id) is about to change. Hence a plan
  never contains container actions for a service and one of its dependencies, and a chain of
  N services boots in N rounds of container actions;
- a service in restart backoff (``policy.held``) gets no Create/Start/Restart (and no Wait:
  the supervisor wakes at ``next_start_at`` anyway). A config change still recreates it:
  a new configuration is a new situation, and may be the fix for the crash loop.

Updates follow each service's ``io.armstack.update-strategy`` label (see :func:`update_strategy`):

- ``download-then-kill`` (default): Build/Pull while the old container keeps running; the
  next plan (image ready, config hash changed) Recreates it. Least downtime.
- ``kill-then-download``: Stop the old container (kept, as a fallback) in the same plan as the
  Build/Pull, so the build does not compete with it for memory/CPU; the next plan Recreates.
- ``delete-then-download``: Remove the old container and RemoveImage its image(s) before the
  Build/Pull, so the card has the room; the next plan Creates.

A service under the two latter strategies whose image is pending is held down: its old
container is not started again (after a power cut it would only be killed once more), unless
``policy.image_failed`` says the new image could not be made in this apply.

Output order: EnsureNetwork/EnsureVolume, Remove (orphans, then duplicates), the strategies'
Stop/Remove/RemoveImage, Build/Pull, then per service in dependency order its
Recreate/Create/Start/Restart or Waits. :func:`stages`
groups a plan into lists the executor runs one after another; actions inside one stage are
independent and may run in parallel. The same input always gives the same plan.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import assert_never

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
from runtime.compose.model import Dependency, ServiceSpec, StackSpec
from runtime.exits import wants_restart
from runtime.hashing import attached_services, config_hash
from runtime.observed import Desired, ObservedContainer, ObservedState, Policy

ContainerAction = Create | Recreate | Start | Restart
CONTAINER_ACTIONS = (Create, Recreate, Start, Restart)

# Waits for a service joined via network_mode / volumes_from use these conditions.
JOINED_RUNNING = "service_started"   # network_mode/ipc/pid: service:X needs X running
JOINED_CREATED = "service_created"   # volumes_from: X needs X to exist

DOWNLOAD_THEN_KILL = "download-then-kill"
KILL_THEN_DOWNLOAD = "kill-then-download"
DELETE_THEN_DOWNLOAD = "delete-then-download"
STRATEGIES = (DOWNLOAD_THEN_KILL, KILL_THEN_DOWNLOAD, DELETE_THEN_DOWNLOAD)


def update_strategy(spec: ServiceSpec) -> str:
    """The service's update strategy; an unknown value falls back to the default (least downtime)."""
    value = (spec.label(labels.UPDATE_STRATEGY) or "").strip().lower()
    return value if value in STRATEGIES else DOWNLOAD_THEN_KILL


def plan(desired: Desired, observed: ObservedState, policy: Policy) -> list[Action]:
    """The next actions that move ``observed`` towards ``desired`` (see the module docstring)."""
    stack = desired.stack
    specs = {s.name: s for s in stack.services}
    order = service_order(stack)
    by_service: dict[str, list[ObservedContainer]] = {}
    for c in sorted(observed.containers, key=lambda c: (c.service, c.id)):
        by_service.setdefault(c.service, []).append(c)

    removals: list[Action] = []
    if policy.remove_orphans:
        removals += [
            Remove(c.service, c.id, reason="orphan")
            for service, cs in sorted(by_service.items())
            if service not in specs
            for c in cs
        ]

    images, image_ids = _image_actions(desired, observed, order)
    # Services whose new image is pending and whose strategy takes the old container down first.
    held_down = {name for name in order if name not in image_ids and name not in policy.image_failed
                 and update_strategy(specs[name]) != DOWNLOAD_THEN_KILL}
    early, deleted = _strategy_actions(stack, observed, by_service, held_down)

    changes: list[Action] = []
    kept: dict[str, ObservedContainer] = {}   # the container each service keeps
    pending: set[str] = set()                 # services whose container changes in this plan
    pending |= {a.service for a in early if isinstance(a, Stop | Remove)}
    for name in order:
        spec = specs[name]
        if name in deleted:
            continue   # its containers go in this plan: nothing to keep, nothing to start
        live = [c for c in by_service.get(name, []) if c.status != "removing"]
        image_id = image_ids.get(name)
        expected = None
        if image_id is not None:
            attached = {t: kept[t].id for t in attached_services(spec) if t in kept}
            expected = config_hash(stack, name, image_id, attached)
        best = _best(live, expected)
        if best is not None:
            kept[name] = best
        removals += [Remove(name, c.id, reason="duplicate") for c in live if c is not best]
        if name in held_down:
            continue   # stopped (or stays stopped) until its new image is ready
        steps = _service_steps(spec, best, image_id, expected, kept, pending, policy)
        if any(isinstance(a, CONTAINER_ACTIONS) for a in steps):
            pending.add(name)
        changes += steps

    return _ensure_actions(stack, observed) + removals + early + images + changes


def _strategy_actions(
    stack: StackSpec, observed: ObservedState, by_service: Mapping[str, Sequence[ObservedContainer]],
    held_down: set[str],
) -> tuple[list[Action], set[str]]:
    """Stop/Remove/RemoveImage that the update strategies of ``held_down`` services ask for.

    Returns the actions and the services whose containers are all removed by them. An image
    is removed only if no container outside those removed here uses it (the engine refuses
    anyway, but the plan should not ask for what cannot work).
    """
    actions: list[Action] = []
    deleted: set[str] = set()
    removed_ids: set[str] = set()
    doomed_images: list[tuple[str, str]] = []
    for name in service_order(stack):
        if name not in held_down:
            continue
        live = [c for c in by_service.get(name, []) if c.status != "removing"]
        if update_strategy(stack.service(name)) == KILL_THEN_DOWNLOAD:
            best = _best(live, None)   # the same container the main loop keeps
            if best is not None and best.running:
                actions.append(Stop(name, best.id, reason="update"))
            continue
        deleted.add(name)
        actions += [Remove(name, c.id, reason="update") for c in live]
        removed_ids |= {c.id for c in live}
        current = observed.image(stack.image_ref(name))
        for image_id in [c.image_id for c in live] + ([current.id] if current is not None else []):
            doomed_images.append((name, image_id))
    present = {img.id for img in observed.images}
    in_use = {c.image_id for c in observed.containers if c.id not in removed_ids}
    seen: set[str] = set()
    for name, image_id in doomed_images:
        if image_id and image_id in present and image_id not in in_use and image_id not in seen:
            seen.add(image_id)
            actions.append(RemoveImage(name, image_id))
    return actions, deleted


def plan_down(observed: ObservedState, stack: StackSpec | None, remove_volumes: bool) -> list[Action]:
    """Actions that take the stack down: every container, then its networks (and volumes).

    Without ``stack`` only containers are removed: which networks and volumes belong to the
    stack is only known from its spec. External networks and volumes are never removed, nor
    any not labelled as the project's (``runtime.ownership``).
    Use :func:`stages` with ``stack`` to stop dependents before their dependencies.
    """
    order = {name: i for i, name in enumerate(service_order(stack))} if stack else {}
    # Dependents first, in reverse dependency order; unknown services (orphans) first of all.
    last = len(order)
    containers = sorted(observed.containers, key=lambda c: (-order.get(c.service, last), c.service, c.id))
    actions: list[Action] = [Remove(c.service, c.id, reason="down") for c in containers]
    if stack is not None:
        # Only what is labelled as this project's: another project's may carry the same name.
        mine = stack.project
        actions += [RemoveNetwork(n) for n in _stack_networks(stack)
                    if n in observed.networks and observed.network_owner(n) == mine]
        if remove_volumes:
            actions += [RemoveVolume(v) for v in _stack_volumes(stack)
                        if v in observed.volumes and observed.volume_owner(v) == mine]
    return actions


def stages(actions: Sequence[Action], stack: StackSpec | None = None) -> list[list[Action]]:
    """Split a plan into stages to run one after another; a stage's actions are independent.

    Kinds in order: ensures, removals and stops, image removals, builds/pulls, container
    actions, network/volume removals. With ``stack``, removals are further split so dependents go before their
    dependencies, and container actions so dependencies go first (plans from :func:`plan`
    never need the latter, but plans edited by hand might). Waits are not executed and are
    left out. Order inside a stage follows the plan. Empty stages are dropped.
    """
    depth = _depths(stack) if stack is not None else {}
    keyed: dict[tuple[int, int], list[Action]] = {}
    for a in actions:
        key = _stage_key(a, depth)
        if key is not None:
            keyed.setdefault(key, []).append(a)
    return [keyed[k] for k in sorted(keyed)]


def service_order(stack: StackSpec) -> list[str]:
    """Service names, every one after the services it depends on; file order breaks ties.

    Dependencies are ``depends_on``, ``network_mode``/``ipc``/``pid: service:X`` and ``volumes_from``. A
    cycle (the loader rejects them) is broken at the earliest service in file order.
    """
    index = {s.name: i for i, s in enumerate(stack.services)}
    deps = {s.name: {d for d in _dependencies(s) if d in index and d != s.name} for s in stack.services}
    dependents: dict[str, list[str]] = {name: [] for name in index}
    for name, ds in deps.items():
        for d in ds:
            dependents[d].append(name)
    missing = {name: len(ds) for name, ds in deps.items()}
    ready = [(index[n], n) for n, k in missing.items() if k == 0]
    heapq.heapify(ready)
    placed: list[str] = []
    done: set[str] = set()
    while len(placed) < len(index):
        if not ready:  # a cycle: release the earliest remaining service
            name = min((n for n in index if n not in done), key=index.__getitem__)
            heapq.heappush(ready, (index[name], name))
        _, name = heapq.heappop(ready)
        if name in done:
            continue
        done.add(name)
        placed.append(name)
        for child in dependents[name]:
            missing[child] -= 1
            if missing[child] == 0 and child not in done:
                heapq.heappush(ready, (index[child], child))
    return placed


def dependency_satisfied(container: ObservedContainer | None, condition: str) -> bool:
    """Whether a dependency's kept container meets a ``depends_on`` condition."""
    if container is None:
        return False
    if condition == "service_completed_successfully":
        return container.status == "exited" and container.exit_code == 0
    if condition == "service_healthy" and container.health is not None:
        return container.status == "running" and container.health == "healthy"
    # service_started, or service_healthy without a healthcheck: running is enough.
    return container.status == "running"


def failed_for_good(container: ObservedContainer | None, condition: str) -> bool:
    """Whether a dependency's kept container can no longer meet ``condition`` by itself."""
    if container is None:
        return False
    if condition == "service_completed_successfully":
        return container.status in ("exited", "dead") and container.exit_code != 0
    return container.status == "dead" or (condition == "service_healthy" and container.health == "unhealthy")


def replaced_dependency(spec: ServiceSpec, container: ObservedContainer,
                        kept: Mapping[str, ObservedContainer]) -> str | None:
    """A ``restart: true`` dependency whose container was created after ``container`` started.

    The dependency was recreated (an update) while this service ran: docker compose restarts
    the dependant then, so it reconnects to the new container.
    """
    if container.started_at is None:
        return None
    for dep in spec.depends_on:
        other = kept.get(dep.service)
        if dep.restart and other is not None and other.created_at > container.started_at:
            return dep.service
    return None


# -- helpers ---------------------------------------------------------------------------------


def _dependencies(spec: ServiceSpec) -> list[str]:
    return [d.service for d in spec.depends_on] + list(attached_services(spec))


def _depths(stack: StackSpec) -> dict[str, int]:
    """Length of the longest dependency chain below each service (0: depends on nothing)."""
    specs = {s.name: s for s in stack.services}
    depth: dict[str, int] = {}
    for name in service_order(stack):  # dependencies first, so their depth is known
        ds = [depth[d] for d in _dependencies(specs[name]) if d in depth]
        depth[name] = 1 + max(ds) if ds else 0
    return depth


def _stage_key(a: Action, depth: Mapping[str, int]) -> tuple[int, int] | None:
    """(stage, order within it) of an action; None for a Wait, which is not executed."""
    match a:
        case Wait():
            return None
        case EnsureNetwork() | EnsureVolume():
            return (0, 0)
        case Remove() | Stop():
            top = max(depth.values(), default=0)
            return (1, top - depth.get(a.service, top))  # deepest dependents (and orphans) first
        case RemoveImage():
            return (2, 0)   # after the containers using the image are gone
        case Build() | Pull():
            return (3, 0)
        case Create() | Start() | Restart() | Recreate():
            return (4, depth.get(a.service, 0))
        case RemoveNetwork() | RemoveVolume():
            return (5, 0)
        case _:
            assert_never(a)


def _image_actions(
    desired: Desired, observed: ObservedState, order: Iterable[str]
) -> tuple[list[Action], dict[str, str]]:
    """Build/Pull for services whose image is missing or stale; ids of the images that are ready.

    A service pinned to an image id (``Desired.pinned_images``) that is present uses it as is.
    """
    stack = desired.stack
    actions: list[Action] = []
    ready: dict[str, str] = {}
    pending_refs: set[str] = set()   # one Build/Pull per image, even if services share it
    for name in order:
        spec = stack.service(name)
        ref = stack.image_ref(name)
        pin = desired.pinned_image(name)
        if pin is not None and observed.image(pin) is not None:
            ready[name] = pin   # a rollback: the previous release's image, never built or pulled again
            continue
        if ref in pending_refs:
            continue
        img = observed.image(ref)
        if spec.build is not None:
            want = desired.build_hash(name)
            # An unknown build hash (inputs not hashed yet) never forces a rebuild.
            if img is None or (want is not None and img.label(labels.BUILD_HASH) != want):
                actions.append(Build(name, ref, want or ""))
                pending_refs.add(ref)
                continue
        elif img is None:
            actions.append(Pull(name, ref))
            pending_refs.add(ref)
            continue
        ready[name] = img.id
    return actions, ready


def _best(containers: Sequence[ObservedContainer], expected: str | None) -> ObservedContainer | None:
    """The container to keep among several of one service: running, up to date, newest."""
    if not containers:
        return None
    return max(containers, key=lambda c: (c.running, c.config_hash == expected, c.created_at, c.id))


def _service_steps(
    spec: ServiceSpec,
    best: ObservedContainer | None,
    image_id: str | None,
    expected: str | None,
    kept: Mapping[str, ObservedContainer],
    pending: set[str],
    policy: Policy,
) -> list[Action]:
    """The container action for one service, or the Waits that hold it back (maybe nothing)."""
    name = spec.name
    held = policy.held(name)
    blockers = _blockers(spec, kept, pending)

    def gated(action: ContainerAction) -> list[Action]:
        return list(blockers) if blockers else [action]

    if best is None:
        # Without an image the Build/Pull in this plan is the progress; when held, the wake-up is.
        if image_id is None or expected is None or held:
            return []
        return gated(Create(name, image_id, expected))
    if expected is not None and image_id is not None and best.config_hash != expected:
        return gated(Recreate(name, best.id, image_id, expected))
    if best.status in ("exited", "created", "dead"):
        stopped_before_apply = (policy.applied_at is not None and best.finished_at is not None
                                and best.finished_at < policy.applied_at)
        if held or not (stopped_before_apply or wants_restart(best, spec.restart, policy.service_runtime(name))):
            return []
        if best.status == "dead":  # the engine cannot start a dead container: replace it
            if image_id is None or expected is None:
                return []
            return gated(Recreate(name, best.id, image_id, expected))
        return gated(Start(name, best.id))
    if best.status == "running" and best.health == "unhealthy" and policy.restart_unhealthy and not held:
        return [Restart(name, best.id, reason="unhealthy")]  # deps do not matter: it is running already
    replaced = replaced_dependency(spec, best, kept) if best.status == "running" and not held else None
    if replaced is not None:
        return gated(Restart(name, best.id, reason=f"dependency {replaced} was recreated"))
    return []


def _blockers(spec: ServiceSpec, kept: Mapping[str, ObservedContainer], pending: set[str]) -> list[Wait]:
    """Waits for every dependency that is unmet now or changes in this plan."""
    waits: list[Wait] = []
    seen: set[tuple[str, str]] = set()

    def block(on: str, condition: str) -> None:
        if (on, condition) not in seen:
            seen.add((on, condition))
            waits.append(Wait(spec.name, on, condition))

    dep: Dependency
    for dep in spec.depends_on:
        if not dep.required and dep.service not in pending and failed_for_good(kept.get(dep.service), dep.condition):
            continue   # as docker compose: an optional dependency that failed is skipped
        if dep.service in pending or not dependency_satisfied(kept.get(dep.service), dep.condition):
            block(dep.service, dep.condition)
    changing = pending.__contains__
    for net in spec.joined_services:
        if changing(net) or kept.get(net) is None or kept[net].status != "running":
            block(net, JOINED_RUNNING)
    for vf in spec.volumes_from:
        if changing(vf.service) or vf.service not in kept:
            block(vf.service, JOINED_CREATED)
    return waits


def _stack_networks(stack: StackSpec) -> list[str]:
    """Engine-side names of the non-external networks some service joins.

    A declared network no service joins is not created, as with ``docker compose``; a service
    with a ``network_mode`` joins none.
    """
    external = {n.name for n in stack.networks if n.external}
    names = {n for s in stack.services if not s.network_mode for n in s.networks}
    return sorted({stack.network_name(n) for n in names if n not in external})


def _stack_volumes(stack: StackSpec) -> list[str]:
    """Engine-side names of the non-external named volumes the stack declares or mounts."""
    external = {v.name for v in stack.volumes if v.external}
    names = {v.name for v in stack.volumes} | {
        m.source for s in stack.services for m in s.volumes if m.type == "volume" and m.source
    }
    return sorted({stack.volume_name(v) for v in names if v not in external})


def _ensure_actions(stack: StackSpec, observed: ObservedState) -> list[Action]:
    actions: list[Action] = [EnsureNetwork(n) for n in _stack_networks(stack) if n not in observed.networks]
    actions += [EnsureVolume(v) for v in _stack_volumes(stack) if v not in observed.volumes]
    return actions
