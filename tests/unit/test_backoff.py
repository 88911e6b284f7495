"""Restart backoff: the schedule as a table, then its properties over generated crash sequences."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.backoff import (
    BackoffPolicy,
    CrashHistory,
    crash_looping,
    delay,
    next_start_at,
    record_crash,
    reset,
    runtime_after_crash,
)

P = BackoffPolicy()


def crashes(n: int, policy: BackoffPolicy = P, uptime: float = 1.0) -> CrashHistory:
    """History after ``n`` crashes, each after ``uptime`` seconds up, starting at t=0."""
    hist, now = CrashHistory(), 0.0
    for _ in range(n):
        now += uptime
        hist = record_crash(hist, now, now - uptime, policy)
    return hist


@pytest.mark.parametrize(
    ("n", "expected"),
    [(0, 0.0), (1, 0.0), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 128.0), (10, 256.0), (11, 300.0), (500, 300.0)],
)
def test_default_schedule(n: int, expected: float) -> None:
    assert delay(crashes(n)) == expected


def test_custom_policy_schedule() -> None:
    p = BackoffPolicy(initial=0.5, factor=3.0, cap=10.0)
    assert [delay(crashes(n, p), p) for n in range(1, 7)] == [0.0, 0.5, 1.5, 4.5, 10.0, 10.0]


def test_huge_streak_does_not_overflow() -> None:
    assert delay(CrashHistory(count=10_000)) == P.cap


@pytest.mark.parametrize(
    ("uptime", "count_after"),
    [(599.9, 4), (600.0, 1), (3600.0, 1), (0.0, 4)],
)
def test_reset_after_long_uptime(uptime: float, count_after: int) -> None:
    hist = crashes(3)
    now = 10_000.0
    assert record_crash(hist, now, now - uptime).count == count_after


def test_never_started_continues_the_streak() -> None:
    assert record_crash(crashes(2), 50.0, None).count == 3


def test_crash_loop_threshold() -> None:
    assert [crash_looping(crashes(n)) for n in range(7)] == [False] * 5 + [True] * 2
    assert not crash_looping(record_crash(crashes(9), 1e6, 0.0))  # a long run ends the loop
    assert reset(crashes(9)) == CrashHistory()


def test_next_start_and_runtime() -> None:
    assert next_start_at(crashes(1), 100.0) is None  # first crash: restart at once
    assert next_start_at(crashes(3), 100.0) == 102.0
    rt = runtime_after_crash(crashes(5), 100.0, 137)
    assert (rt.restarts, rt.next_start_at, rt.crash_looping, rt.last_exit_code) == (4, 108.0, True, 137)


@pytest.mark.parametrize(
    "kwargs", [{"factor": 0.5}, {"initial": -1.0}, {"cap": -1.0}, {"crash_loop_threshold": 0}, {"reset_after": -1}]
)
def test_invalid_policies(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffPolicy(**kwargs)  # type: ignore[arg-type]


policies = st.builds(
    BackoffPolicy,
    initial=st.floats(0, 100),
    factor=st.floats(1, 10),
    cap=st.floats(0, 1000),
    reset_after=st.floats(0, 1000),
    crash_loop_threshold=st.integers(1, 20),
)
uptimes = st.lists(st.floats(0, 2000) | st.none(), max_size=40)


@settings(max_examples=300, deadline=None)
@given(policy=policies, ups=uptimes)
def test_properties_over_crash_sequences(policy: BackoffPolicy, ups: list[float | None]) -> None:
    hist, now, previous = CrashHistory(), 0.0, 0.0
    for up in ups:
        now += (up or 0.0) + 1.0
        started = None if up is None else now - up
        hist = record_crash(hist, now, started, policy)
        d = delay(hist, policy)
        assert 0.0 <= d <= policy.cap
        if started is not None and now - started >= policy.reset_after:
            assert hist.count == 1 and d == 0.0  # reset: recovers at once
        else:
            assert d >= previous  # never decreases within a streak
        assert crash_looping(hist, policy) == (hist.count >= policy.crash_loop_threshold)
        nxt = next_start_at(hist, now, policy)
        assert nxt is None if d == 0 else nxt == now + d
        previous = d
