"""Apply reports and readiness, as pure functions over action results and observed state.

An apply's report says, per service, whether its image was rebuilt (steps, cache hits,
seconds) and whether its container was recreated (and how long it was down). The supervisor
merges the results of every round of one apply into it; ``status.json`` carries it and
``armstack apply`` prints it. Shape (``last_apply`` in the status, ``armstack apply --json``)::

    {"generation", "ok", "error", "finished_at",
     "report": {service: {"rebuilt", "steps", "cached", "build_seconds", "recreated",
                          "created", "downtime_seconds", "strategy"}},
     "totals": {"rebuilt", "recreated", "created", "removed", "steps", "cached",
                "build_seconds", "downtime_seconds"},
     "removed": [services whose containers were removed because the file no longer has them]}

``steps``/``cached`` count the Dockerfile's own steps of the last build (labels the runtime
adds are not counted); ``downtime_seconds`` runs from the stop of the old container to the
start of the new one, across rounds when the update strategy stops it before building.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from runtime.actions import ActionResult, Build, Create, Recreate, Remove
from runtime.compose.model import RestartPolicy, StackSpec
from runtime.exits import completed
from runtime.observed import ObservedContainer, ObservedState
from runtime.planner import update_strategy

ServiceReport = dict[str, Any]


def empty_entry() -> ServiceReport:
    return {"rebuilt": False, "steps": 0, "cached": 0, "build_seconds": 0.0, "recreated": False,
            "created": False, "downtime_seconds": 0.0}


REMOVED = "removed"   # key of an entry whose service was removed (it is not in the full report)


def merge_results(report: dict[str, ServiceReport], results: Iterable[ActionResult]) -> dict[str, ServiceReport]:
    """``report`` updated with one round's results (a new dict; the input is not changed)."""
    out = {k: dict(v) for k, v in report.items()}
    for r in results:
        if not r.ok or r.service is None:
            continue
        entry = out.setdefault(r.service, empty_entry())
        if isinstance(r.action, Build) and r.build is not None:
            entry["rebuilt"] = True
            entry["steps"] = r.build.steps
            entry["cached"] = r.build.cached
            entry["build_seconds"] = round(entry["build_seconds"] + r.build.seconds, 3)
        elif isinstance(r.action, Recreate) or (isinstance(r.action, Create) and r.downtime is not None):
            # A Create with a downtime ends a replacement that removed the old container first.
            entry["recreated"] = True
            entry["downtime_seconds"] = round(entry["downtime_seconds"] + (r.downtime or 0.0), 3)
        elif isinstance(r.action, Create):
            entry["created"] = True
        elif isinstance(r.action, Remove) and r.action.reason == "orphan":
            entry[REMOVED] = True
    return out


def full_report(stack: StackSpec, report: Mapping[str, ServiceReport]) -> dict[str, ServiceReport]:
    """One entry per desired service, in file order (untouched services included)."""
    out: dict[str, ServiceReport] = {}
    for name in stack.service_names:
        entry = {**empty_entry(), **(report.get(name) or {})}
        entry.pop(REMOVED, None)
        entry["strategy"] = update_strategy(stack.service(name))
        out[name] = entry
    return out


def removed_services(stack: StackSpec, report: Mapping[str, ServiceReport]) -> list[str]:
    """Services whose containers this apply removed because the file no longer has them."""
    wanted = set(stack.service_names)
    return sorted(name for name, e in report.items() if e.get(REMOVED) and name not in wanted)


def totals(report: Mapping[str, ServiceReport], removed: Iterable[str] = ()) -> dict[str, Any]:
    """Sums over a full report: how many services were rebuilt/recreated/created, steps, seconds."""
    entries = list(report.values())
    return {
        "rebuilt": sum(1 for e in entries if e.get("rebuilt")),
        "recreated": sum(1 for e in entries if e.get("recreated")),
        "created": sum(1 for e in entries if e.get("created")),
        "removed": len(list(removed)),
        "steps": sum(int(e.get("steps") or 0) for e in entries),
        "cached": sum(int(e.get("cached") or 0) for e in entries),
        "build_seconds": round(sum(float(e.get("build_seconds") or 0.0) for e in entries), 3),
        "downtime_seconds": round(sum(float(e.get("downtime_seconds") or 0.0) for e in entries), 3),
    }


def kept_container(observed: ObservedState, service: str) -> ObservedContainer | None:
    """The container that represents a service: a running one first, else the newest."""
    cs = sorted(observed.containers_of(service), key=lambda c: (c.running, c.created_at), reverse=True)
    return cs[0] if cs else None


def service_state(c: ObservedContainer, policy: RestartPolicy) -> str:
    """A container's state as the status shows it: its health while running, ``completed``
    for a job that finished (exits.completed), else the engine's status."""
    if c.status == "running":
        return {"starting": "starting", "unhealthy": "unhealthy"}.get(c.health or "", "running")
    return "completed" if completed(c, policy) else str(c.status)


# A container without a healthcheck counts as up once it has stayed running this long: one that
# exits right after it started is not "up" for the instant an observation happens to catch it.
SETTLE_SECONDS = 1.0


def settles_at(c: ObservedContainer, settle: float = SETTLE_SECONDS) -> float | None:
    """When a running container without a healthcheck will have stayed running ``settle`` s
    (epoch seconds, the engine's clock for StartedAt); None for one that is not running, proves
    itself by its healthcheck instead, or whose start is unknown."""
    if c.status != "running" or c.health is not None or c.started_at is None:
        return None
    return c.started_at + settle


def settling(c: ObservedContainer, now: float | None, settle: float = SETTLE_SECONDS) -> bool:
    """Whether ``c`` has not yet stayed running long enough at ``now``; never when ``now`` is None.

    A start later than ``now`` means the wall clock went back since (an NTP correction, a board
    without RTC): how long it has run cannot be told, and it counts as settled rather than as
    starting until the clock has caught up (a day, after a jump of a day)."""
    end = settles_at(c, settle)
    return now is not None and end is not None and end - settle <= now < end


def service_ready(stack: StackSpec, observed: ObservedState, service: str,
                  now: float | None = None) -> tuple[bool, str]:
    """Whether a service counts as up for ``apply``, and if not, why (one phrase). With ``now``,
    a service without a healthcheck must have stayed running for SETTLE_SECONDS."""
    spec = stack.service(service)
    c = kept_container(observed, service)
    if c is None:
        return False, "has no container"
    if c.status == "running":
        if settling(c, now):
            return False, "is starting"
        if c.health in (None, "healthy"):
            return True, "running"
        return False, f"is {c.health}"
    if completed(c, spec.restart):
        return True, "completed"   # a one-shot job that finished is done, not down
    code = f" (exit code {c.exit_code})" if c.exit_code is not None else ""
    return False, f"is {c.status}{code}"


def settled_at(stack: StackSpec, observed: ObservedState) -> float | None:
    """When the last service still settling will have stayed running long enough (epoch), if any."""
    times = [t for name in stack.service_names
             if (c := kept_container(observed, name)) is not None and (t := settles_at(c)) is not None]
    return max(times) if times else None


def not_ready(stack: StackSpec, observed: ObservedState, now: float | None = None) -> dict[str, str]:
    """Services that are not up yet, with the reason."""
    out: dict[str, str] = {}
    for name in stack.service_names:
        ok, why = service_ready(stack, observed, name, now)
        if not ok:
            out[name] = why
    return out


def format_report(report: Mapping[str, ServiceReport]) -> list[str]:
    """Human-readable lines for ``armstack apply``."""
    lines = []
    for name, e in report.items():
        parts = []
        if e.get("rebuilt"):
            parts.append(f"rebuilt in {e.get('build_seconds', 0):.1f}s ({e.get('cached', 0)}/{e.get('steps', 0)} "
                         "steps cached)")
        if e.get("recreated"):
            parts.append(f"recreated ({e.get('strategy', 'download-then-kill')}), "
                         f"down {e.get('downtime_seconds', 0):.2f}s")
        elif e.get("created"):
            parts.append("created")
        lines.append(f"{name}: {', '.join(parts) if parts else 'unchanged'}")
    return lines
