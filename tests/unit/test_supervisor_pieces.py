"""Pieces the supervisor keeps apart from its loop: reaction times, failed rounds, failed images, wakeups."""

from __future__ import annotations

import pytest

from runtime import labels, roundfailures
from runtime.actions import Build, Pull
from runtime.events import ContainerEvent, Resync
from runtime.imagefailures import ImageFailures
from runtime.planner import KILL_THEN_DOWNLOAD
from runtime.reaction import ReactionTimes
from runtime.roundfailures import RoundFailures
from runtime.wakeups import Batch, Signal, sleep_for, sort_batch
from tests.unit import specs

pytestmark = pytest.mark.unit


def test_the_reaction_time_runs_from_the_die_read_to_the_start_call() -> None:
    r = ReactionTimes()
    r.die_read("web", 100.0)
    r.die_read("web", 100.5)          # a later die of the same burst: the first counts
    r.restarted("web", 103.0, 2.0)    # returned at 103 after 2 s: issued at 101
    assert r.event_to_action("web") == 1.0
    r.restarted("web", 110.0, 0.1)    # no die read since: the last reaction stays
    assert r.event_to_action("web") == 1.0 and r.marks == [("web", 103.0), ("web", 110.0)]


def test_a_restart_after_the_round_that_read_the_die_is_no_reaction() -> None:
    r = ReactionTimes()
    r.die_read("web", 100.0)
    r.round_done()                    # held by backoff: restarted in a later round
    r.restarted("web", 130.0, 0.5)
    assert r.event_to_action("web") is None and r.marks == [("web", 130.0)]


def _boom() -> None:
    raise ValueError("bug")


def test_failed_rounds_double_their_delay_and_show_a_traceback_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(roundfailures, "RETRY_FIRST", 1.0)
    rounds = RoundFailures()
    failures = []
    for _ in range(4):
        try:
            _boom()
        except ValueError as exc:
            failures.append(rounds.failed(exc, interval=5.0))
    assert [f.delay for f in failures] == [1.0, 2.0, 4.0, 5.0]
    assert [f.first for f in failures] == [True, False, False, False]
    assert "ValueError: bug" in failures[0].trace and "retried in 1 s" in failures[0].message
    rounds.succeeded()
    try:
        _boom()
    except ValueError as exc:
        assert rounds.failed(exc, interval=5.0).delay == 1.0


def test_a_failed_build_is_skipped_until_the_next_generation() -> None:
    failures = ImageFailures()
    failures.failed(Build("web", "web:1", "h1"), disk_full=False)
    assert failures.skip(Build("web", "web:1", "h1")) and not failures.skip(Build("web", "web:1", "h2"))
    assert failures.services == {"web"}
    failures.new_generation()
    assert not failures.skip(Build("web", "web:1", "h1")) and failures.services == frozenset()


def test_a_new_failure_of_a_service_taken_down_first_needs_one_more_round() -> None:
    kill_first = specs.svc("web", labels=((labels.UPDATE_STRATEGY, KILL_THEN_DOWNLOAD),))
    st = specs.stack(kill_first, specs.svc("db"))
    failures = ImageFailures()
    failures.failed(Pull("db", "db:1"), disk_full=False)
    assert not failures.fallback_due(frozenset(), st)          # db was never taken down
    failures.failed(Pull("web", "web:1"), disk_full=False)
    assert failures.fallback_due(frozenset({"db"}), st)        # web's old container comes back now
    assert not failures.fallback_due(frozenset({"db", "web"}), st)   # already handled earlier


def test_a_build_that_ran_out_of_space_is_retried_but_its_service_not_held() -> None:
    failures = ImageFailures()
    failures.failed(Build("web", "web:1", "h1"), disk_full=True)
    failures.failed(Pull("db", "db:1"), disk_full=False)
    assert not failures.skip(Build("web", "web:1", "h1"))
    assert failures.services == {"web", "db"}


def test_a_batch_sorts_requests_dies_and_notes() -> None:
    batch = sort_batch([ContainerEvent("die", "c1", "web", time=5.0), Signal("reload"),
                        ContainerEvent("oom", "c2abcdef123456789", ""), ContainerEvent("die", "c3", "", time=6.0),
                        Resync("events reconnected")])
    assert (batch.stop, batch.reload, batch.dies) == (False, True, (("web", 5.0),))
    assert batch.notes == (("warning", "service c2abcdef1234 ran out of memory"),
                           ("info", "events reconnected: reconciling in full"))
    assert sort_batch([Signal("stop")]).stop and sort_batch([]) == Batch()


def test_the_loop_sleeps_until_the_earliest_due_time() -> None:
    assert sleep_for(100.0, 1000.0, next_reconcile=130.0) == 30.0
    # A wall-clock due time converts with the same pair of clocks; a None is nothing due.
    assert sleep_for(100.0, 1000.0, next_reconcile=130.0, monotonic_due=(None, 120.0), wall_due=(1005.0,)) == 5.0
    assert sleep_for(100.0, 1000.0, next_reconcile=130.0, monotonic_due=(90.0,)) == 0.0
