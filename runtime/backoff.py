"""Restart backoff per service, as pure functions over an immutable crash history.

The supervisor keeps one :class:`CrashHistory` per service, calls :func:`record_crash` when
the service's container dies, and holds the restart until ``now + delay(...)``
(:func:`next_start_at`). Schedule, with the default policy:

    crash #1 -> restart at once (delay 0): a one-off crash recovers as fast as the event
                stream reports it, which is the point of watching events at all;
    crash #2 -> initial (1 s), then doubling: 2 s, 4 s, ... capped at ``cap`` (5 min).

A streak ends when a container had been running for ``reset_after`` seconds before it
crashed: that crash counts as #1 again. ``crash_loop_threshold`` crashes in one streak mark
the service as crash looping (reported, and still retried at the capped delay).

All times are seconds on one clock chosen by the caller (the supervisor uses a monotonic
clock); ``started_at`` must be on the same clock as ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass

from runtime.observed import ServiceRuntime


@dataclass(frozen=True)
class BackoffPolicy:
    initial: float = 1.0          # delay before the second restart of a streak
    factor: float = 2.0           # growth per further crash
    cap: float = 300.0            # no delay exceeds this
    reset_after: float = 600.0    # up this long before a crash: the streak starts over
    crash_loop_threshold: int = 5  # this many crashes in one streak: crash looping

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0 or self.reset_after < 0:
            raise ValueError("backoff times must not be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1, or delays would shrink within a streak")
        if self.crash_loop_threshold < 1:
            raise ValueError("crash_loop_threshold must be at least 1")


DEFAULT_POLICY = BackoffPolicy()


@dataclass(frozen=True)
class CrashHistory:
    """Crashes of one service in the current streak."""

    count: int = 0                    # consecutive crashes without a reset
    last_crash_at: float | None = None


def record_crash(
    history: CrashHistory,
    now: float,
    started_at: float | None,
    policy: BackoffPolicy = DEFAULT_POLICY,
) -> CrashHistory:
    """The history after a crash at ``now`` of a container started at ``started_at``.

    ``started_at`` None (the container never ran, e.g. start failed) continues the streak.
    """
    ran_long = started_at is not None and now - started_at >= policy.reset_after
    count = 1 if ran_long else history.count + 1
    return CrashHistory(count=count, last_crash_at=now)


def reset(history: CrashHistory) -> CrashHistory:
    """The history after the service was stopped or updated on purpose: no streak."""
    return CrashHistory()


def delay(history: CrashHistory, policy: BackoffPolicy = DEFAULT_POLICY) -> float:
    """Seconds to wait before restarting after the latest crash (0 for none or the first)."""
    if history.count <= 1:
        return 0.0
    try:
        raw = policy.initial * policy.factor ** (history.count - 2)
    except OverflowError:  # a very long streak: far beyond any cap
        return policy.cap
    return min(policy.cap, raw)


def next_start_at(history: CrashHistory, now: float, policy: BackoffPolicy = DEFAULT_POLICY) -> float | None:
    """When the service may start again after a crash at ``now``; None if at once."""
    d = delay(history, policy)
    return now + d if d > 0 else None


def crash_looping(history: CrashHistory, policy: BackoffPolicy = DEFAULT_POLICY) -> bool:
    return history.count >= policy.crash_loop_threshold


def runtime_after_crash(
    history: CrashHistory,
    now: float,
    exit_code: int | None,
    policy: BackoffPolicy = DEFAULT_POLICY,
) -> ServiceRuntime:
    """The :class:`ServiceRuntime` the planner should see after the crash ``history`` ends with.

    ``restarts`` counts the restarts already made in this streak (``count - 1``), which is
    what ``restart: on-failure:N`` compares against N.
    """
    return ServiceRuntime(
        restarts=max(0, history.count - 1),
        next_start_at=next_start_at(history, now, policy),
        crash_looping=crash_looping(history, policy),
        last_exit_code=exit_code,
    )
