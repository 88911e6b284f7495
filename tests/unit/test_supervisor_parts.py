"""Pure parts of the supervisor: event parsing, apply reports, readiness, the project lock."""

from __future__ import annotations

import io
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from runtime import supervisor as supervisor_mod
from runtime.actions import Action, Build, Create, Recreate
from runtime.compose.model import RestartPolicy, ServiceSpec, StackSpec
from runtime.control import ApplyRequest, ProjectLock, is_locked, read_request
from runtime.events import parse_event
from runtime.executor import ActionResult, BuildReport, _split_ref, _ts
from runtime.logs import LogPresenter
from runtime.observed import ObservedContainer, ObservedState
from runtime.report import full_report, merge_results, not_ready
from runtime.state import StateStore
from runtime.supervisor import Supervisor
from tests.unit import specs
from tests.unit.specs import FakeEngine


def test_parse_die_and_health_events() -> None:
    die = parse_event({"Type": "container", "Action": "die",
                       "Actor": {"ID": "c1", "Attributes": {"io.armstack.service": "web", "exitCode": "137"}}}, 1.0)
    assert die is not None and (die.action, die.service, die.exit_code) == ("die", "web", 137)
    hs = parse_event({"Type": "container", "Action": "health_status: unhealthy", "Actor": {"ID": "c1"}}, 1.0)
    assert hs is not None and (hs.action, hs.health) == ("health_status", "unhealthy")
    assert parse_event({"Type": "container", "Action": "exec_start: sh", "Actor": {}}, 1.0) is None
    assert parse_event({"Type": "network", "Action": "connect"}, 1.0) is None


def test_report_merges_builds_and_recreates() -> None:
    results = [
        ActionResult(Build("db", "p-db", "h"), True, build=BuildReport("db", 5, 3, 1.25)),
        ActionResult(Recreate("web", "old", "img", "h"), True, container_id="new", downtime=0.4),
        ActionResult(Create("api", "img", "h"), False, "boom"),
    ]
    report = merge_results({}, results)
    assert report["db"]["rebuilt"] and report["db"]["steps"] == 5 and report["db"]["cached"] == 3
    assert report["web"]["recreated"] and report["web"]["downtime_seconds"] == 0.4
    assert "api" not in report
    stack = StackSpec("p", (ServiceSpec("db", image="x"), ServiceSpec("api", image="x"), ServiceSpec("web", image="x")))
    full = full_report(stack, report)
    assert list(full) == ["db", "api", "web"] and full["api"]["rebuilt"] is False


def test_readiness() -> None:
    stack = StackSpec("p", (ServiceSpec("web", image="x"), ServiceSpec("job", image="x", restart=RestartPolicy("no")),
                            ServiceSpec("db", image="x")))
    obs = ObservedState(containers=(
        ObservedContainer("1", "p-web-1", "web", "h", "i", "running", health="starting"),
        ObservedContainer("2", "p-job-1", "job", "h", "i", "exited", exit_code=0),
    ))
    assert not_ready(stack, obs) == {"web": "is starting", "db": "has no container"}


def test_project_lock_is_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "p" / "supervisor.lock"
    assert not is_locked(path)
    with ProjectLock(path) as lock:
        assert lock.acquire()
        assert is_locked(path)
        assert not ProjectLock(path).acquire()
    assert not is_locked(path)


def test_request_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "request.json"
    assert read_request(path) is None
    path.write_text('{"file": "/a/compose.yaml", "project": "p", "generation": 4}')
    assert read_request(path) == ApplyRequest("/a/compose.yaml", "p", 4)


def test_engine_timestamps_and_refs() -> None:
    assert _ts("0001-01-01T00:00:00Z") is None
    assert abs((_ts("2024-05-01T10:00:00.123456789Z") or 0) - 1714557600.123456789) < 1e-6
    assert _split_ref("registry:5000/app") == ("registry:5000/app", "latest")
    assert _split_ref("app:1.2") == ("app", "1.2")


# -- a supervisor on an in-memory engine ------------------------------------------------------


class _FakeExecutor:
    """The executor's surface the reconcile loop uses, on the in-memory FakeEngine.

    ``fail`` holds the numbers of the ``execute`` calls (1-based) that raise an unexpected
    exception, as a bug in planning or executing would.
    """

    def __init__(self, stack: StackSpec, fail: Iterable[int] = ()) -> None:
        self.engine = FakeEngine(stack)
        self.fail = set(fail)
        self.calls = 0

    def observe(self) -> ObservedState:
        return self.engine.state

    def execute(self, actions: list[Action]) -> list[ActionResult]:
        self.calls += 1
        if self.calls in self.fail:
            raise RuntimeError(f"unexpected failure in round {self.calls}")
        self.engine.apply(actions)
        return [ActionResult(a, True) for a in actions]

    def expected_stop(self, container_id: str) -> bool:
        return False


class _NoFollower:
    def follow(self, *args: object, **kwargs: object) -> None:
        pass

    def stop_all(self, timeout: float = 0.0) -> None:
        pass


def _supervisor(tmp_path: Path, executor: _FakeExecutor, *, once: bool = True) -> tuple[Supervisor, io.StringIO]:
    st = executor.engine.stack
    out = io.StringIO()
    sup = Supervisor(None, tmp_path / "compose.yaml", data_dir=tmp_path / "data",  # type: ignore[arg-type]
                     presenter=LogPresenter(out, color=False), once=once, reconcile_interval=30.0)
    sup.stack, sup.desired = st, specs.desired(st)
    sup.executor = executor  # type: ignore[assignment]
    sup.follower = _NoFollower()  # type: ignore[assignment]
    sup.store = StateStore(tmp_path / "data", st.project)
    return sup, out


def test_a_reconcile_round_that_raises_is_logged_and_retried_with_backoff(tmp_path: Path) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web")), fail={1, 2})
    sup, out = _supervisor(tmp_path, ex)
    sup._begin_apply(1)
    first = sup._reconcile()
    assert first is not None and "unexpected failure in round 1" in first
    delay1 = sup.next_reconcile - time.monotonic()
    second = sup._reconcile()
    assert second is not None and "round 2" in second
    delay2 = sup.next_reconcile - time.monotonic()
    assert 0 < delay1 < delay2 <= sup.reconcile_interval   # retried soon, then later: a backoff
    assert out.getvalue().count("Traceback") == 1           # the traceback once, not every round
    assert sup._reconcile() is None                          # the next round converges
    assert [c.service for c in ex.engine.state.containers if c.running] == ["web"]
    assert sup.last_apply is not None and sup.last_apply.ok


def test_the_loop_outlives_a_round_that_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervisor_mod, "ROUND_RETRY_FIRST", 0.01)
    ex = _FakeExecutor(specs.stack(specs.svc("web")), fail={1})
    sup, out = _supervisor(tmp_path, ex)
    sup._begin_apply(1)
    assert sup._reconcile() is not None
    assert sup._loop() == supervisor_mod.EXIT_OK
    assert ex.calls >= 2 and sup.apply_ok is True
