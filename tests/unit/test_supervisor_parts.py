"""Pure parts of the supervisor: event parsing, apply reports, readiness, the project lock."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from runtime import cli, roundfailures
from runtime import supervisor as supervisor_mod
from runtime.actions import Action, ActionResult, Build, BuildReport, Create, Recreate
from runtime.compose.model import RestartPolicy, ServiceSpec, StackSpec
from runtime.compose.source import StackSource
from runtime.control import (
    ApplyRequest,
    ProjectLock,
    hand_off,
    is_locked,
    lock_holders,
    request_path,
    running_supervisor,
    take_requests,
)
from runtime.engine.images import split_ref
from runtime.engine.reading import engine_time
from runtime.errors import EngineError, SupervisorError
from runtime.events import parse_event
from runtime.logs import LogPresenter
from runtime.observed import ObservedContainer, ObservedState
from runtime.report import full_report, merge_results, not_ready
from runtime.settings import RuntimeSettings
from runtime.state import StateStore, atomic_write_json
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
        ActionResult(Create("api", "img", "h"), False, EngineError("boom")),
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
    path.parent.mkdir(mode=0o700)
    with ProjectLock(path) as lock:
        assert lock.acquire()
        assert is_locked(path)
        assert not ProjectLock(path).acquire()
    assert not is_locked(path)


def test_request_round_trip(tmp_path: Path) -> None:
    assert take_requests(tmp_path) == ([], [])
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "p"), 4)
    atomic_write_json(request_path(tmp_path, req.id), req.to_json())
    assert take_requests(tmp_path) == ([req], [])
    assert list(tmp_path.iterdir()) == []   # taken off the directory
    assert ApplyRequest(StackSource.of("f", "p"), 1).id != ApplyRequest(StackSource.of("f", "p"), 1).id
    # Override files and profiles travel with the request: `apply -f a -f b --profile debug`.
    full = ApplyRequest(StackSource(("/a/compose.yaml", "/a/device.yaml"), "p", ("debug",)), 5)
    atomic_write_json(request_path(tmp_path, full.id), full.to_json())
    assert take_requests(tmp_path) == ([full], [])
    # `apply --reset` travels too; a request without the key (an older CLI) is a plain apply.
    reset = ApplyRequest(StackSource.of("/a/compose.yaml", "p"), 6, reset=True)
    atomic_write_json(request_path(tmp_path, reset.id), reset.to_json())
    assert take_requests(tmp_path) == ([reset], [])
    assert ApplyRequest.from_json({k: v for k, v in reset.to_json().items() if k != "reset"}).reset is False


def test_a_request_of_an_older_cli_is_read_as_the_new_shape(tmp_path: Path) -> None:
    # During an upgrade a CLI older than the running supervisor writes file/overrides/profiles.
    (tmp_path / "request-r1.json").write_text(json.dumps(
        {"file": "/a/compose.yaml", "project": "p", "generation": 3, "id": "r1",
         "overrides": ["/a/device.yaml"], "profiles": ["debug"]}))
    source = StackSource(("/a/compose.yaml", "/a/device.yaml"), "p", ("debug",))
    assert take_requests(tmp_path) == ([ApplyRequest(source, 3, "r1")], [])


BAD_REQUESTS = [
    '{"file": "/a/compose.yaml", "project": "demo", "generation": [1], "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": Infinity, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": NaN, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1e400, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": true, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": -1, "id": "r1"}',
    '{"file": ["/a"], "project": "demo", "generation": 1, "id": "r1"}',
    '{"file": "compose.yaml", "project": "demo", "generation": 1, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": 5, "generation": 1, "id": "r1"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1, "id": "../x"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1, "id": "r1", "overrides": ["rel.yaml"]}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1, "id": "r1", "overrides": "/a/b.yaml"}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1, "id": "r1", "profiles": ["a b"]}',
    '{"file": "/a/compose.yaml", "project": "demo", "generation": 1, "id": "r1", "profiles": [1]}',
    '{"source": {"paths": [], "project": "demo"}, "generation": 1, "id": "r1"}',
    '{"source": {"paths": ["rel.yaml"], "project": "demo"}, "generation": 1, "id": "r1"}',
    '{"source": {"paths": ["/a/compose.yaml"], "project": "demo", "profiles": ["a b"]}, "generation": 1, "id": "r1"}',
    '{"source": ["/a/compose.yaml"], "generation": 1, "id": "r1"}',
    '{"source": {"paths": ["/a/compose.yaml"], "project": "demo"}, "generation": 1, "id": "r1", "reset": "yes"}',
    "{}",
    "[1, 2]",
    '{"file": "/a/compose.yaml", "gen',
    "[" * 100000,
]


@pytest.mark.parametrize("text", BAD_REQUESTS + ["\udcff"])
def test_a_bad_request_is_taken_and_reported_once(tmp_path: Path, text: str) -> None:
    path = tmp_path / "request-r1.json"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    requests, problems = take_requests(tmp_path)
    assert requests == [] and len(problems) == 1 and str(path) in problems[0]
    assert not path.exists()
    assert take_requests(tmp_path) == ([], [])


def test_a_request_behind_a_symlink_is_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(ApplyRequest(StackSource.of("/etc/other.yaml", "demo"), 1).to_json()))
    (tmp_path / "request-r2.json").symlink_to(target)
    requests, problems = take_requests(tmp_path)
    assert requests == [] and "symbolic link" in problems[0]
    assert target.exists()


@pytest.mark.parametrize("text", BAD_REQUESTS)
def test_a_bad_request_never_ends_the_supervisor(tmp_path: Path, text: str) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web")))
    sup, out = _supervisor(tmp_path, ex, once=False)
    sup.store.ensure_dir()  # type: ignore[union-attr]
    (sup.store.dir / "request.json").write_text(text)  # type: ignore[union-attr]
    sup.applies.take_request(sup.store.dir, at_boot=True)  # type: ignore[union-attr]  # at boot
    assert not (sup.store.dir / "request.json").exists()  # type: ignore[union-attr]
    (sup.store.dir / "request.json").write_text(text)  # type: ignore[union-attr]
    sup._reload()                                       # on SIGHUP: reloads its own file instead
    assert not (sup.store.dir / "request.json").exists()  # type: ignore[union-attr]
    assert "invalid apply request" in out.getvalue()


def test_engine_timestamps_and_refs() -> None:
    assert engine_time("0001-01-01T00:00:00Z") is None
    assert abs((engine_time("2024-05-01T10:00:00.123456789Z") or 0) - 1714557600.123456789) < 1e-6
    assert split_ref("registry:5000/app") == ("registry:5000/app", "latest")
    assert split_ref("app:1.2") == ("app", "1.2")


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

    def set_unattached(self, services: object) -> None:
        pass

    def stop_all(self, timeout: float = 0.0) -> None:
        pass


def _supervisor(tmp_path: Path, executor: _FakeExecutor, *, once: bool = True) -> tuple[Supervisor, io.StringIO]:
    st = executor.engine.stack
    out = io.StringIO()
    (tmp_path / "compose.yaml").write_text(f"name: {st.project}\nservices:\n"
                                          + "".join(f"  {s.name}:\n    image: {s.image}\n" for s in st.services))
    sup = Supervisor(None, tmp_path / "compose.yaml",  # type: ignore[arg-type]
                     settings=RuntimeSettings(data_dir=tmp_path / "data"),
                     presenter=LogPresenter(out, color=False), once=once, reconcile_interval=30.0)
    sup.stack, sup.desired = st, specs.desired(st)
    sup.executor = executor  # type: ignore[assignment]
    sup.follower = _NoFollower()  # type: ignore[assignment]
    sup.store = StateStore(tmp_path / "data", st.project)
    return sup, out


def test_a_reconcile_round_that_raises_is_logged_and_retried_with_backoff(tmp_path: Path) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web")), fail={1, 2})
    sup, out = _supervisor(tmp_path, ex)
    sup._start_generation(1)
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
    monkeypatch.setattr(roundfailures, "RETRY_FIRST", 0.01)
    ex = _FakeExecutor(specs.stack(specs.svc("web")), fail={1})
    sup, out = _supervisor(tmp_path, ex)
    sup._start_generation(1)
    assert sup._reconcile() is not None
    assert sup._loop() == supervisor_mod.EXIT_OK
    assert ex.calls >= 2 and sup.apply_ok is True


# -- apply results tied to their request ------------------------------------------------------


def _hand_off(tmp_path: Path, req: ApplyRequest, statuses: list[dict[str, Any]],
              running: Callable[[], bool] = lambda: True) -> dict[str, Any]:
    seq = iter(statuses)
    signals: list[tuple[int, int]] = []
    try:
        return hand_off(req, state_dir=tmp_path, pid=4242, read_status=lambda: next(seq),
                        write_json=atomic_write_json, supervisor_running=running, timeout=5, poll=0,
                        kill=lambda pid, sig: signals.append((pid, sig)))
    finally:
        assert signals == [(4242, signal.SIGHUP)]


def _status(pid: int = 4242, **kw: Any) -> dict[str, Any]:
    return {"supervisor": {"pid": pid}, "updated_at": time.time(), "dropped_requests": {}, **kw}


def test_apply_waits_for_the_result_of_its_own_request(tmp_path: Path) -> None:
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "demo"), 5)
    other = _status(generation=5, last_apply={"generation": 5, "ok": True, "request_id": "someone-else"})
    ours = _status(generation=6, last_apply={"generation": 6, "ok": False, "request_id": req.id})
    done = _hand_off(tmp_path, req, [other, other, ours])
    assert done["last_apply"] == ours["last_apply"]
    assert json.loads(request_path(tmp_path, req.id).read_text())["id"] == req.id


def test_apply_finds_its_answer_after_a_later_apply_finished_first(tmp_path: Path) -> None:
    # Two applies: the later one's result is `last_apply` by the time the earlier one reads.
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "demo"), 5)
    mine = {"generation": 6, "ok": True, "request_id": req.id}
    later = _status(generation=7, last_apply={"generation": 7, "ok": True, "request_id": "later"},
                    answered_requests={req.id: mine, "later": {"generation": 7, "ok": True, "request_id": "later"}})
    assert _hand_off(tmp_path, req, [later])["last_apply"] == mine


def test_apply_dropped_by_a_restarting_supervisor_says_so(tmp_path: Path) -> None:
    # The new supervisor's boot applies its own file as the next generation: not this request.
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "demo"), 5)
    booted = _status(pid=5151, generation=5, last_apply={"generation": 5, "ok": True, "request_id": None},
                     dropped_requests={req.id: "the supervisor restarted before it took the request"})
    with pytest.raises(SupervisorError, match="restarted before it took the request") as err:
        _hand_off(tmp_path, req, [booted])
    assert "was not applied" in str(err.value) and cli.exit_code_for(err.value) == 4


def test_apply_lost_in_a_restart_after_it_was_taken_says_so(tmp_path: Path) -> None:
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "demo"), 5)
    booted = _status(pid=5151, generation=5, last_apply={"generation": 5, "ok": True, "request_id": None},
                     updated_at=time.time() + 60)   # written by the new supervisor after the hand-off
    with pytest.raises(SupervisorError, match="restarted"):
        _hand_off(tmp_path, req, [booted])


def test_apply_to_a_supervisor_that_stopped_says_so(tmp_path: Path) -> None:
    req = ApplyRequest(StackSource.of("/a/compose.yaml", "demo"), 5)
    with pytest.raises(SupervisorError, match="stopped before it applied"):
        _hand_off(tmp_path, req, [_status()], running=lambda: False)
    assert not request_path(tmp_path, req.id).exists()


def _write_request(sup: Supervisor, file: Path, generation: int, mtime: float) -> ApplyRequest:
    assert sup.store is not None
    req = ApplyRequest(StackSource.of(str(file), "demo"), generation)
    path = request_path(sup.store.ensure_dir(), req.id)
    atomic_write_json(path, req.to_json())
    os.utime(path, (mtime, mtime))
    return req


def test_concurrent_requests_each_get_their_own_answer(tmp_path: Path) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web")))
    sup, _ = _supervisor(tmp_path, ex, once=False)
    compose = tmp_path / "compose.yaml"
    first = _write_request(sup, compose, 1, 1000.0)
    second = _write_request(sup, compose, 1, 2000.0)
    sup._reload()
    assert sup.applies.pending is not None and sup.applies.pending.request_id == second.id
    assert sup.applies.dropped.keys() == {first.id} and "superseded" in sup.applies.dropped[first.id]
    third = _write_request(sup, compose, 2, 3000.0)
    sup._reload()                                   # while the second one is still being applied
    assert "superseded" in sup.applies.dropped[second.id]
    assert sup._reconcile() is None
    assert sup.last_apply is not None and sup.last_apply.request_id == third.id and sup.last_apply.ok
    status = sup.status()
    assert status["last_apply"]["request_id"] == third.id
    assert set(status["dropped_requests"]) == {first.id, second.id}


def _crash(ex: _FakeExecutor, service: str) -> None:
    """The service's container exits with 137 now (after the supervisor started: a crash)."""
    st = ex.engine.state
    ex.engine.state = dataclasses.replace(st, containers=tuple(
        dataclasses.replace(c, status="exited", exit_code=137, finished_at=time.time()) if c.service == service else c
        for c in st.containers))


@pytest.mark.parametrize("reset", [False, True])
def test_a_reset_request_forgets_every_service_history(tmp_path: Path, reset: bool) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web"), specs.svc("db")))
    sup, out = _supervisor(tmp_path, ex, once=False)
    sup.releases.probation = 0.0   # no probation to wait out
    sup._start_generation(1)
    assert sup._reconcile() is None and sup.apply_ok
    sup._reload()                  # the stack as its file says (what the requests below name)
    assert sup._reconcile() is None and sup.apply_ok
    _crash(ex, "web")
    assert sup._reconcile() is None
    sup.releases.state = dataclasses.replace(sup.releases.state, totals={"db": 2})   # rolled back twice before
    before = sup.status()["services"]
    assert (before["web"]["restarts"], before["web"]["last_exit"], before["db"]["rollbacks"]) == (1, 137, 2)

    req = ApplyRequest(StackSource.of(str(tmp_path / "compose.yaml"), "demo"), 3, reset=reset)
    atomic_write_json(request_path(sup.store.ensure_dir(), req.id), req.to_json())  # type: ignore[union-attr]
    sup._reload()
    assert sup._reconcile() is None
    assert sup.last_apply is not None and sup.last_apply.request_id == req.id and sup.last_apply.ok
    after = sup.status()["services"]
    kept = sup.store.load().services  # type: ignore[union-attr]
    if reset:   # as just deployed: what a runtime on an empty state directory would say
        assert (after["web"]["restarts"], after["web"]["last_exit"], after["db"]["rollbacks"]) == (0, None, 0)
        assert kept.get("web") is None or kept["web"].restarts == 0
        assert "forgetting the history" in out.getvalue()
    else:       # a plain apply keeps the history
        assert (after["web"]["restarts"], after["db"]["rollbacks"]) == (1, 2) and kept["web"].restarts == 1
    assert [c.status for c in ex.engine.state.containers] == ["running", "running"]   # nothing restarted for it


def test_requests_left_from_before_a_restart_are_answered_as_dropped(tmp_path: Path) -> None:
    ex = _FakeExecutor(specs.stack(specs.svc("web")))
    sup, _ = _supervisor(tmp_path, ex, once=False)
    left = _write_request(sup, tmp_path / "compose.yaml", 3, 1000.0)
    assert sup.store is not None
    assert sup.applies.take_request(sup.store.dir, at_boot=True) is None
    assert "restarted" in sup.applies.dropped[left.id]


def test_the_lock_holder_is_read_from_the_kernel(tmp_path: Path) -> None:
    lock = tmp_path / "supervisor.lock"
    pid_file = tmp_path / "supervisor.pid"
    with ProjectLock(lock) as held:
        assert held.acquire()
        assert lock_holders(lock) == {os.getpid()}
        pid_file.write_text(str(os.getpid()))
        assert running_supervisor(lock, pid_file) == os.getpid()
        fake = tmp_path / "locks"   # the holder in another container: its pid is not visible here
        fake.write_text(f"1: FLOCK  ADVISORY  WRITE 0 fe:00:{os.stat(lock).st_ino} 0 EOF\n"
                        f"2: -> FLOCK  ADVISORY  WRITE {os.getpid()} fe:00:{os.stat(lock).st_ino} 0 EOF\n")
        with pytest.raises(SupervisorError, match="another container"):
            running_supervisor(lock, pid_file, proc_locks=fake)
        assert running_supervisor(lock, pid_file, proc_locks=tmp_path / "no-proc") == os.getpid()
    assert running_supervisor(lock, pid_file) is None   # a free lock: whatever the pid file says


def test_a_supervisor_that_is_its_containers_pid_1_is_found_only_when_the_kernel_says_so(tmp_path: Path) -> None:
    # `armstack up` as a container's main process is pid 1 there; elsewhere pid 1 is init.
    lock = tmp_path / "supervisor.lock"
    pid_file = tmp_path / "supervisor.pid"
    pid_file.write_text("1")
    with ProjectLock(lock) as held:
        assert held.acquire()
        as_pid_1 = tmp_path / "locks"
        as_pid_1.write_text(f"1: FLOCK  ADVISORY  WRITE 1 fe:00:{os.stat(lock).st_ino} 0 EOF\n")
        assert running_supervisor(lock, pid_file, proc_locks=as_pid_1) == 1
        with pytest.raises(SupervisorError, match="not signalling init"):
            running_supervisor(lock, pid_file)                            # held by us, not pid 1
        with pytest.raises(SupervisorError, match="not signalling init"):
            running_supervisor(lock, pid_file, proc_locks=tmp_path / "no-proc")   # the kernel cannot say
