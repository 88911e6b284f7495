"""Pure parts of the supervisor: event parsing, apply reports, readiness, the project lock."""

from __future__ import annotations

from pathlib import Path

from runtime.actions import Build, Create, Recreate
from runtime.compose.model import RestartPolicy, ServiceSpec, StackSpec
from runtime.control import ApplyRequest, ProjectLock, is_locked, read_request
from runtime.events import parse_event
from runtime.executor import ActionResult, BuildReport, _split_ref, _ts
from runtime.observed import ObservedContainer, ObservedState
from runtime.report import full_report, merge_results, not_ready


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

