"""What woke the supervisor's loop, and how long it may sleep before it must look again (pure).

The loop blocks on one queue: engine events (``runtime.events``), the stop/reload requests its
signal handlers put there, and nothing else. A burst (die + oom + start...) is read as one
batch and answered with one reconcile. The wait is until the earliest of everything that falls
due: the periodic reconcile, a backoff, the end of a probation, the apply deadline, the moment the
stack has settled, the disk guard's next check.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from runtime.events import ContainerEvent, Resync
from runtime.logs import Level

Request = Literal["stop", "reload"]


@dataclass(frozen=True)
class Signal:
    """A request the signal handlers (or ``request_stop``/``request_reload``) put on the queue."""

    name: Request


@dataclass(frozen=True)
class Batch:
    """One batch of queue items, sorted by what the loop does with them."""

    stop: bool = False
    reload: bool = False
    dies: tuple[tuple[str, float], ...] = ()        # (service, monotonic time its die was read)
    notes: tuple[tuple[Level, str], ...] = ()       # (level, sentence) to log, in order


def sort_batch(items: Iterable[object]) -> Batch:
    stop = reload = False
    dies: list[tuple[str, float]] = []
    notes: list[tuple[Level, str]] = []
    for it in items:
        if isinstance(it, Signal) and it.name == "stop":
            stop = True
        elif isinstance(it, Signal) and it.name == "reload":
            reload = True
        elif isinstance(it, ContainerEvent) and it.action == "die" and it.service:
            dies.append((it.service, it.time))
        if isinstance(it, ContainerEvent) and it.action == "oom":
            notes.append(("warning", f"service {it.service or it.container_id[:12]} ran out of memory"))
        elif isinstance(it, Resync):
            notes.append(("info", f"{it.reason}: reconciling in full"))
    return Batch(stop, reload, tuple(dies), tuple(notes))


def sleep_for(now: float, wall: float, *, next_reconcile: float, monotonic_due: Iterable[float | None] = (),
              wall_due: Iterable[float | None] = ()) -> float:
    """Seconds until the earliest due time; ``monotonic_due`` are monotonic times, ``wall_due``
    wall-clock ones (converted with ``now``/``wall`` taken together). Never negative."""
    due = [next_reconcile, *(d for d in monotonic_due if d is not None),
           *(now + (d - wall) for d in wall_due if d is not None)]
    return max(0.0, min(due) - now)
