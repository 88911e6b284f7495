"""What the status document says of each service (pure: the supervisor hands in its state).

The state a service is shown in weighs, in order: a crash loop, a backoff hold, a missing
container, then what the container itself shows (``report.service_state``), "waiting" while
the planner holds the service for a dependency.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from runtime.compose.model import RestartPolicy, StackSpec
from runtime.exits import describe_restart
from runtime.observed import ObservedContainer, ObservedState, ServiceRuntime
from runtime.reaction import ReactionTimes
from runtime.releases import ReleaseKeeper
from runtime.report import kept_container, service_state
from runtime.state import ServiceStatus
from runtime.tracker import ServiceTracker


def service_statuses(stack: StackSpec, observed: ObservedState, tracker: ServiceTracker,
                     waits: Mapping[str, Sequence[str]], reaction: ReactionTimes, releases: ReleaseKeeper,
                     *, now_mono: float, now: float) -> dict[str, ServiceStatus]:
    """Every service of ``stack`` as the status shows it; ``waits``: what each one waits for."""
    services: dict[str, ServiceStatus] = {}
    for spec in stack.services:
        name = spec.name
        c = kept_container(observed, name)
        rt = tracker.runtime(name)
        rec = tracker.record(name)
        held = rt.next_start_at is not None and rt.next_start_at > now_mono
        services[name] = ServiceStatus(
            state=state_of(c, spec.restart, rt, held, name in waits),
            restart=describe_restart(spec.restart),
            container_id=c.id if c else None,
            image=stack.image_ref(name),
            image_id=c.image_id if c else None,
            restarts=rec.restarts,
            last_exit=rec.last_exit_code,
            last_exit_at=rec.last_exit_at,
            oom_killed=rec.oom_killed,
            health=c.health if c else None,
            backoff_until=(now + (rt.next_start_at - now_mono)) if held and rt.next_start_at else None,
            crash_looping=rt.crash_looping,
            waiting_for=tuple(waits.get(name, ())),
            event_to_action=reaction.event_to_action(name),
            probation=releases.on_probation(name),
            rollbacks=releases.rollbacks(name),
        )
    return services


def state_of(c: ObservedContainer | None, policy: RestartPolicy, rt: ServiceRuntime, held: bool,
             waiting: bool) -> str:
    if rt.crash_looping and (c is None or not c.running):
        return "crash-loop"
    if held:
        return "backoff"
    if c is None:
        return "waiting" if waiting else "missing"
    state = service_state(c, policy)
    if waiting and state not in ("running", "starting", "unhealthy", "completed"):
        return "waiting"
    return state
