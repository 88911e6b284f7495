"""The service tracker: exits → verdicts with named reasons, backoff and records, on plain data and
the fake engine (no Docker)."""

from __future__ import annotations

import dataclasses

import pytest

from runtime.actions import Restart, Start
from runtime.backoff import BackoffPolicy
from runtime.observed import ObservedContainer, ObservedState, Policy
from runtime.planner import plan
from runtime.tracker import ServiceTracker
from tests.unit.specs import FakeEngine, converge, desired, stack, svc

START = 1000.0   # the supervisor started at this wall-clock time


class Ledger:
    """The executor's record of containers it stopped on purpose."""

    def __init__(self, *ids: str) -> None:
        self.ids = set(ids)

    def expected_stop(self, container_id: str) -> bool:
        return container_id in self.ids


def died(c: ObservedContainer, code: int | None = 137, *, at: float, oom: bool = False,
         status: str = "exited") -> ObservedContainer:
    return dataclasses.replace(c, status=status, exit_code=code, finished_at=at, oom_killed=oom)  # type: ignore[arg-type]


def exits(tracker: ServiceTracker, st, observed: ObservedState, *, now: float, ledger: Ledger | None = None):  # type: ignore[no-untyped-def]
    return tracker.note_exits(st, observed, ledger or Ledger(), now=now, wall=START + now,
                              supervisor_started=START)


def running(st) -> ObservedState:  # type: ignore[no-untyped-def]
    return converge(desired(st))[0]


def test_a_crash_restarts_at_once_then_backs_off_then_is_a_crash_loop() -> None:
    st = stack(svc("web"))
    obs = running(st)
    web = obs.containers[0]
    t = ServiceTracker(BackoffPolicy(initial=1.0, factor=2.0, crash_loop_threshold=3))
    delays = []
    for i in range(4):
        now = 10.0 * (i + 1)
        crashed = died(web, at=START + now - 0.1)
        (v,) = exits(t, st, ObservedState((crashed,)), now=now)
        delays.append((v.reason, None if v.restart_at is None else v.restart_at - now))
        web = dataclasses.replace(crashed, status="running", finished_at=None)   # restarted
    assert delays == [("crashed", None), ("crashed", 1.0), ("crash-loop", 2.0), ("crash-loop", 4.0)]
    assert t.runtime("web").crash_looping and t.held("web", 40.5) and not t.held("web", 44.5)
    assert t.next_wakeup(40.5) == 44.0
    assert t.record("web").last_exit_code == 137


def test_the_same_exit_is_counted_once() -> None:
    st = stack(svc("web"))
    c = died(running(st).containers[0], at=START + 5)
    t = ServiceTracker()
    assert len(exits(t, st, ObservedState((c,)), now=6.0)) == 1
    assert exits(t, st, ObservedState((c,)), now=7.0) == []
    assert t.runtime("web").restarts == 0


@pytest.mark.parametrize(("restart", "code", "by_us", "finished", "reason"), [
    ("always", 137, True, START + 5, "stopped"),
    ("no", 0, False, START + 5, "completed"),
    ("on-failure", 0, False, START + 5, "completed"),
    ("always", 137, False, START - 5, "before-us"),
    ("no", 137, False, START + 5, "left-down"),
    ("on-failure", 1, False, START + 5, "crashed"),
])
def test_reasons(restart: str, code: int, by_us: bool, finished: float, reason: str) -> None:
    st = stack(svc("s", restart=restart))
    c = died(running(st).containers[0], code, at=finished)
    t = ServiceTracker()
    (v,) = exits(t, st, ObservedState((c,)), now=10.0, ledger=Ledger(c.id) if by_us else None)
    assert v.reason == reason
    assert v.crash == (reason in ("crashed", "left-down"))
    # Only a crash starts a streak (and so a backoff); a job's exit is still recorded.
    assert (t.runtime("s").last_exit_code is not None) == v.crash
    assert (t.record("s").last_exit_code == code) == (reason != "stopped")


def test_messages_name_what_happened_and_what_now() -> None:
    st = stack(svc("web"), svc("job", restart="no"))
    obs = running(st)
    web, job = (next(c for c in obs.containers if c.service == s) for s in ("web", "job"))
    t = ServiceTracker()
    v_web, v_job = exits(t, st, ObservedState((died(web, 0, at=START + 1, oom=True), died(job, 3, at=START + 1))),
                         now=2.0)
    assert v_web.message(2.0) == "service web was killed by the OOM killer; restart now"
    assert v_job.message(2.0) == "service job exited with code 3; restart policy 'no': left down"


def test_a_new_container_ends_the_streak_and_starts_count_restarts() -> None:
    st = stack(svc("web"))
    c = running(st).containers[0]
    t = ServiceTracker()
    for i in range(3):
        exits(t, st, ObservedState((died(c, at=START + i, status="exited"),)), now=float(i))
        c = dataclasses.replace(c, finished_at=None)
        t.started("web")
    assert t.runtime("web").restarts == 2 and t.record("web").restarts == 3
    t.replaced("web")
    assert t.runtime("web").restarts == 0 and t.next_wakeup(0.0) is None
    assert t.record("web").restarts == 3          # the record outlives the streak


def test_a_failed_start_backs_off_like_a_crash() -> None:
    t = ServiceTracker(BackoffPolicy(initial=1.0))
    t.crashed("web", None, None, False, started_at=None, now=5.0, wall=START + 5)
    rt = t.crashed("web", None, None, False, started_at=None, now=6.0, wall=START + 6)
    assert rt.next_start_at == 7.0
    assert t.record("web").last_exit_code is None   # nothing exited: no exit to record


def test_the_planner_restarts_what_the_tracker_releases_on_the_fake_engine() -> None:
    st = stack(svc("web"), svc("db"))
    d = desired(st)
    obs = running(st)
    engine = FakeEngine(st, obs, now=START + 100)
    t = ServiceTracker(BackoffPolicy(initial=5.0))
    for i, now in enumerate((100.0, 101.0)):
        engine.state = ObservedState(tuple(died(c, at=START + now) if c.service == "web" else c
                                           for c in engine.state.containers), engine.state.images,
                                     engine.state.networks, engine.state.volumes)
        exits(t, st, engine.state, now=now)
        actions = plan(d, engine.state, Policy(now=now, runtime=t.runtimes()))
        restarts = [a for a in actions if isinstance(a, Start | Restart)]
        if i == 0:   # first crash: at once
            assert [a.service for a in restarts] == ["web"]
            engine.apply(actions)
            t.started("web")
        else:        # second: held by the 5 s backoff, then released
            assert restarts == []
            later = plan(d, engine.state, Policy(now=now + 5.0, runtime=t.runtimes()))
            assert [a.service for a in later if isinstance(a, Start)] == ["web"]
    assert t.record("web").restarts == 1 and t.record("db") == t.record("nobody")


def test_a_new_configuration_clears_every_streak() -> None:
    t = ServiceTracker()
    t.crashed("a", 1, None, False, started_at=None, now=1.0, wall=START + 1)
    t.crashed("a", 1, None, False, started_at=None, now=2.0, wall=START + 2)
    assert t.held("a", 2.5)
    t.new_configuration()
    assert not t.held("a", 2.5) and t.runtimes() == ()


def test_forget_is_as_just_deployed_and_an_exit_seen_is_not_counted_again() -> None:
    st = stack(svc("web"))
    web = running(st).containers[0]
    t = ServiceTracker(BackoffPolicy(initial=1.0, factor=2.0, crash_loop_threshold=2))
    for i in range(2):
        crashed = died(web, at=START + 10.0 * (i + 1) - 0.1)
        exits(t, st, ObservedState((crashed,)), now=10.0 * (i + 1))
        t.started("web")
        web = dataclasses.replace(crashed, status="running", finished_at=None)
    assert t.record("web").restarts == 2 and t.runtime("web").crash_looping and t.held("web", 20.5)
    dead = died(web, at=START + 29.9)
    exits(t, st, ObservedState((dead,)), now=30.0)
    t.forget()
    assert t.record("web").restarts == 0 and t.record("web").last_exit_code is None
    assert not t.runtime("web").crash_looping and not t.held("web", 30.5) and t.next_wakeup(30.0) is None
    assert exits(t, st, ObservedState((dead,)), now=31.0) == []   # counted before the reset: not news
    assert t.record("web").restarts == 0
