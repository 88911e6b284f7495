"""Persisted state and status files: atomic writes, round trips, corrupt files."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from runtime import state as state_mod
from runtime.errors import StateError
from runtime.state import (
    ApplyResult,
    PersistedState,
    ServiceRecord,
    ServiceStatus,
    StateStore,
    StatusDocument,
    SupervisorInfo,
    atomic_write_json,
    build_status,
    read_json,
)


def test_atomic_write_then_read(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    atomic_write_json(target, {"a": [1, 2], "b": "é"})
    assert read_json(target) == {"a": [1, 2], "b": "é"}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]   # no temp file left


def test_crash_before_replace_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"generation": 1})
    before = target.read_bytes()

    def power_cut(src: object, dst: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(state_mod.os, "replace", power_cut)
    with pytest.raises(StateError, match="state.json"):
        atomic_write_json(target, {"generation": 2})
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]   # the temp file was removed


def test_crash_during_write_leaves_old_file_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "state.json"
    atomic_write_json(target, {"generation": 1})

    def fail_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(state_mod.os, "fsync", fail_fsync)
    with pytest.raises(StateError, match="disk is full"):
        atomic_write_json(target, {"generation": 2, "pad": "x" * 10000})
    assert read_json(target) == {"generation": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_write_is_fsynced_file_and_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(state_mod.os, "fsync", spy)
    atomic_write_json(tmp_path / "s.json", {})
    assert synced == [False, True]


def test_read_json_missing_returns_default(tmp_path: Path) -> None:
    assert read_json(tmp_path / "nope.json", {"d": 1}) == {"d": 1}
    assert read_json(tmp_path / "nope.json") is None


def test_read_json_corrupt_raises_with_path_and_hint(tmp_path: Path) -> None:
    bad = tmp_path / "status.json"
    bad.write_text('{"project": "demo", "rel')
    with pytest.raises(StateError) as err:
        read_json(bad)
    assert str(bad) in str(err.value)
    assert "delete" in str(err.value).lower()


def test_write_to_missing_dir_is_a_state_error(tmp_path: Path) -> None:
    with pytest.raises(StateError, match="Cannot write"):
        atomic_write_json(tmp_path / "missing" / "x.json", {})


def test_persisted_state_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    st = PersistedState(
        release="v1.2",
        generation=7,
        services={
            "db": ServiceRecord(restarts=3, last_exit_code=137, last_exit_at=1714557600.25, oom_killed=True),
            "web": ServiceRecord(),
        },
    )
    store.save(st)
    assert store.load() == st
    assert json.loads(store.state_path.read_text())["version"] == 1


def test_load_without_file_is_empty_and_creates_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "data", "demo")
    assert store.load() == PersistedState()
    assert not (tmp_path / "data").exists()


def test_from_json_tolerates_unknown_and_missing_keys() -> None:
    newer = {
        "version": 9,
        "release": "r9",
        "future_field": {"x": 1},
        "services": {"db": {"restarts": 2, "cpu_seconds": 3.5}, "web": "garbage"},
    }
    st = PersistedState.from_json(newer)
    expected = {"db": ServiceRecord(restarts=2), "web": ServiceRecord()}
    assert st == PersistedState(release="r9", generation=0, services=expected)
    assert PersistedState.from_json({}) == PersistedState()
    assert PersistedState.from_json([1, 2]) == PersistedState()
    assert PersistedState.from_json({"generation": "7", "services": []}) == PersistedState()
    assert ServiceRecord.from_json({"restarts": True, "last_exit_at": 5}) == ServiceRecord(last_exit_at=5.0)


def test_with_service_returns_new_state() -> None:
    st = PersistedState(generation=1)
    st2 = st.with_service("db", ServiceRecord(restarts=1))
    assert st.services == {}
    assert st2.service("db").restarts == 1
    assert st2.service("other") == ServiceRecord()


def test_corrupt_state_is_moved_aside(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    store.state_path.write_bytes(b"\x00\x00\x00")
    warnings: list[str] = []
    assert store.load(on_warning=warnings.append) == PersistedState()
    aside = store.state_path.with_name("state.json.corrupt")
    assert aside.read_bytes() == b"\x00\x00\x00"
    assert not store.state_path.exists()
    assert len(warnings) == 1 and str(aside) in warnings[0]
    store.save(PersistedState(generation=2))   # and the next save works
    assert store.load().generation == 2


def test_status_round_trip_with_helpers(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    assert store.read_status() is None
    doc = build_status(
        project="demo",
        release="v1",
        generation=3,
        supervisor=SupervisorInfo(pid=42, started_at=100.0, ready=True),
        services={
            "web": ServiceStatus(state="running", container_id="abc", image="web:1", restarts=1, health="healthy"),
            "db": ServiceStatus(state="waiting", waiting_for=("net",)),
        },
        last_apply=ApplyResult(generation=3, ok=True, finished_at=101.0, report={"built": ["web"]}),
        disk={"used_percent": 41.0},
        updated_at=102.0,
    )
    store.write_status(doc)
    back = store.read_status()
    assert back == json.loads(json.dumps(doc))
    assert back is not None
    assert set(back) == {
        "project", "release", "generation", "updated_at", "supervisor", "last_apply", "services", "disk",
        "dropped_requests", "answered_requests", "rollback",
    }
    assert set(back["services"]["web"]) >= {
        "state", "container_id", "image", "image_id", "restarts", "last_exit", "oom_killed", "health",
        "backoff_until", "crash_looping", "waiting_for",
    }
    assert set(back["last_apply"]) == {"generation", "ok", "error", "finished_at", "report", "totals", "removed",
                                       "request_id"}
    assert set(back["supervisor"]) == {"pid", "started_at", "ready"}
    assert back["services"]["db"]["waiting_for"] == ["net"]


def test_corrupt_status_raises(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    store.status_path.write_text("[1,")
    with pytest.raises(StateError, match="status.json"):
        store.read_status()
    store.status_path.write_text("[1]")
    with pytest.raises(StateError, match="status object"):
        store.read_status()


def test_paths(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    assert store.dir == tmp_path / "demo"
    assert {p.name for p in (store.status_path, store.state_path, store.lock_path,
                             store.pid_path)} == {"status.json", "state.json", "supervisor.lock", "supervisor.pid"}
    assert all(p.parent == store.dir for p in (store.status_path, store.lock_path, store.pid_path))


@pytest.mark.parametrize("bad", ["", "../etc", "a/b", ".hidden", "-x"])
def test_unsafe_project_names_rejected(tmp_path: Path, bad: str) -> None:
    with pytest.raises(StateError, match="Project name"):
        StateStore(tmp_path, bad)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StateError, match="--data-dir"):
            StateStore(ro, "demo").save(PersistedState())
    finally:
        ro.chmod(0o700)


def test_data_dir_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    with pytest.raises(StateError, match="Cannot create the state directory"):
        StateStore(f, "demo").write_status({})


def test_not_writable_dir_detected_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_mod.os, "access", lambda path, mode: False)
    with pytest.raises(StateError, match="not writable"):
        StateStore(tmp_path, "demo").save(PersistedState())


# -- a state directory that is ours, or refused ---------------------------------------------


def test_new_project_directory_is_private_and_durable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    monkeypatch.setattr(state_mod.os, "fsync", spy)
    store = StateStore(tmp_path / "data", "demo")
    store.ensure_dir()
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    # Each new directory's entry is made durable in its parent: the project's and the data dir's.
    assert os.stat(tmp_path / "data").st_ino in synced and os.stat(tmp_path).st_ino in synced


def test_files_in_the_state_directory_are_0600(tmp_path: Path) -> None:
    from runtime.control import ProjectLock

    store = StateStore(tmp_path, "demo")
    store.save(PersistedState(generation=1))
    store.write_status({"project": "demo"})
    with ProjectLock(store.lock_path) as lock:
        assert lock.acquire()
    for path in (store.state_path, store.status_path, store.lock_path):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
def test_project_directory_of_another_user_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.dir.mkdir(mode=0o700)
    os.chown(store.dir, 12345, -1)
    for use in (store.ensure_dir, store.check_dir, lambda: store.save(PersistedState())):
        with pytest.raises(StateError, match="belongs to uid 12345") as err:
            use()
        assert str(store.dir) in str(err.value)
    assert not store.state_path.exists()


def test_project_directory_writable_by_others_is_refused(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.dir.mkdir()
    store.dir.chmod(0o777)
    with pytest.raises(StateError, match="writable by other users"):
        store.ensure_dir()


def test_project_directory_readable_by_others_is_made_private(tmp_path: Path) -> None:
    # What an older runtime created under umask 022: ours, so tightened rather than refused.
    store = StateStore(tmp_path, "demo")
    store.dir.mkdir()
    store.dir.chmod(0o755)
    store.ensure_dir()
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700


def test_project_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "demo").symlink_to(tmp_path / "elsewhere")
    store = StateStore(tmp_path / "data", "demo")
    with pytest.raises(StateError, match="symbolic link"):
        store.ensure_dir()


@pytest.mark.parametrize("name", ["state.json", "status.json", "supervisor.lock"])
def test_state_files_are_not_followed_through_symlinks(tmp_path: Path, name: str) -> None:
    from runtime.control import ProjectLock

    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    target = tmp_path / "target"
    target.write_text('{"generation": 9}')
    (store.dir / name).symlink_to(target)
    with pytest.raises(StateError, match="symbolic link"):
        if name == "supervisor.lock":
            ProjectLock(store.lock_path).acquire()
        else:
            read_json(store.dir / name)
    assert target.read_text() == '{"generation": 9}'


# -- damaged files: moved aside, or reported -------------------------------------------------


@pytest.mark.parametrize(("content", "why"), [
    (b"\xff\xfe\x00garbage", "corrupt"),
    (b'{"version": 9, "release": "r9", "generation": 3, "services": {}}', "version 9"),
    (b'{"release": "r", "generation": 3, "services": {}}', "version"),
    (b'{"version": 1, "release": ["x"], "generation": 3, "services": {}}', "release"),
    (b'{"version": 1, "release": "r", "generation": "7", "services": {}}', "generation"),
    (b'{"version": 1, "release": "r", "generation": 3, "services": []}', "services"),
    (b'{"version": 1, "release": "r", "generation": 3, "services": {"db": {"restarts": "2"}}}', "db"),
    (b'{"version": 1, "release": "r", "generation": NaN, "services": {}}', "corrupt"),
    (b"[1, 2]", "object"),
])
def test_damaged_state_is_moved_aside_with_a_warning(tmp_path: Path, content: bytes, why: str) -> None:
    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    store.state_path.write_bytes(content)
    warnings: list[str] = []
    assert store.load(on_warning=warnings.append) == PersistedState()
    aside = store.state_path.with_name("state.json.corrupt")
    assert aside.read_bytes() == content and not store.state_path.exists()
    assert len(warnings) == 1 and str(store.state_path) in warnings[0] and why in warnings[0]


GOOD_STATUS = build_status(
    project="demo", release="", generation=2, supervisor=SupervisorInfo(pid=42, started_at=1.0),
    services={"web": ServiceStatus(state="running", restarts=1, backoff_until=5.0)},
    last_apply=ApplyResult(generation=2, ok=True), disk={"percent": 50.0, "used": 1, "free": 1,
                                                         "last_cleanup": {"at": 1.0, "freed_bytes": 2, "removed": []}},
)


def _damaged(path: str, value: object) -> dict[str, object]:
    doc = json.loads(json.dumps(GOOD_STATUS))
    *parents, last = path.split(".")
    here = doc
    for p in parents:
        here = here[p]
    if value is _DELETE:
        del here[last]
    else:
        here[last] = value
    return doc


_DELETE = object()


@pytest.mark.parametrize(("path", "value"), [
    ("services", "x"), ("services", _DELETE), ("services.web", []), ("services.web.state", 5),
    ("services.web.restarts", "1"), ("services.web.backoff_until", "soon"), ("services.web.last_exit", 1.5),
    ("supervisor", [1]), ("supervisor.pid", "42"), ("generation", [1]), ("last_apply", [1]),
    ("last_apply.ok", "yes"), ("disk", "full"), ("disk.percent", "50"), ("disk.last_cleanup", 3),
    ("disk.last_cleanup.at", "x"), ("disk.last_cleanup.removed", 4), ("dropped_requests", [1]),
])
def test_status_with_wrong_types_is_unreadable(tmp_path: Path, path: str, value: object) -> None:
    store = StateStore(tmp_path, "demo")
    store.write_status(GOOD_STATUS)
    assert store.read_status() == json.loads(json.dumps(GOOD_STATUS))
    store.write_status(_damaged(path, value))
    with pytest.raises(StateError, match="status.json") as err:
        store.read_status()
    assert path.split(".")[-1] in str(err.value)


def test_status_not_utf8_is_unreadable(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    store.status_path.write_bytes(b'{"project": "\xff"}')
    with pytest.raises(StateError, match="status.json"):
        store.read_status()


@pytest.mark.parametrize("content", [
    b'{"pulled": ["sha256:a"], "last_used": {}, "last_cleanup": null}',
    b'{"pulled": {"sha256:a": "web"}, "last_used": [], "last_cleanup": null}',
    b'{"pulled": {"sha256:a": 5}, "last_used": {"sha256:a": "yesterday"}, "last_cleanup": null}',
    b'{"pulled": {}, "last_used": {}, "last_cleanup": {"at": "x", "freed_bytes": 1, "removed": []}}',
    b'{"pulled": {}, "last_used": {}, "last_cleanup": {"at": 1.0, "freed_bytes": 1, "removed": 7}}',
    b"\xff\xfe",
    b"[]",
])
def test_damaged_disk_file_is_moved_aside_before_the_disk_guard_reads_it(tmp_path: Path, content: bytes) -> None:
    from runtime.disk import DiskPolicy
    from runtime.diskguard import DiskGuard

    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    store.disk_path.write_bytes(content)
    warnings: list[str] = []
    store.check_disk_file(on_warning=warnings.append)
    assert len(warnings) == 1 and str(store.disk_path) in warnings[0]
    assert store.disk_path.with_name("disk.json.corrupt").read_bytes() == content
    guard = DiskGuard(None, DiskPolicy(), store.disk_path, lambda *a, **k: None)  # type: ignore[arg-type]
    assert guard.pulled == {} and guard.last_cleanup is None
    status = build_status(project="demo", release="", generation=1, supervisor=SupervisorInfo(pid=42, started_at=1.0),
                          services={}, disk=guard.status_json())
    assert state_mod.status_problem(status) is None


def test_good_disk_file_is_left_alone(tmp_path: Path) -> None:
    store = StateStore(tmp_path, "demo")
    store.ensure_dir()
    good = {"pulled": {"sha256:a": "web"}, "last_used": {"sha256:a": 5.0},
            "last_cleanup": {"at": 1.0, "freed_bytes": 10, "removed": ["x"], "reason": "boot"}}
    atomic_write_json(store.disk_path, good)
    store.check_disk_file(on_warning=lambda m: pytest.fail(m))
    assert read_json(store.disk_path) == good


def test_status_document_round_trips_through_json(tmp_path: Path) -> None:
    doc = StatusDocument.from_json(json.loads(json.dumps(GOOD_STATUS)))
    assert doc.supervisor == SupervisorInfo(pid=42, started_at=1.0)
    assert doc.last_apply == ApplyResult(generation=2, ok=True)
    assert doc.services["web"] == ServiceStatus(state="running", restarts=1, backoff_until=5.0)
    assert doc.to_json() == json.loads(json.dumps(GOOD_STATUS))   # the JSON names are unchanged
    store = StateStore(tmp_path, "demo")
    store.write_status(doc.to_json())
    assert store.read_status_document() == doc


def test_service_status_answers_to_the_harness_names() -> None:
    svc = StatusDocument.from_json(json.loads(json.dumps(GOOD_STATUS))).services["web"]
    assert (svc.status, svc.restarts, svc.backoff_until, svc.crash_looping) == ("running", 1, 5.0, False)


def test_status_document_of_no_supervisor_is_written_whole() -> None:
    doc = StatusDocument(project="p", services={"web": ServiceStatus(state="missing", restarts=None)})
    back = StatusDocument.from_json(json.loads(json.dumps(doc.to_json())))
    assert back.supervisor is None and back.services["web"].restarts is None and not back.ok
    assert set(doc.to_json()) == set(GOOD_STATUS)


@pytest.mark.parametrize(("path", "value"), [
    ("services.web.state", 5), ("services.web.restarts", "1"), ("supervisor.pid", "42"), ("last_apply.ok", "yes"),
])
def test_status_document_refuses_wrong_types(path: str, value: object) -> None:
    with pytest.raises(StateError, match=path.split(".")[-1]):
        StatusDocument.from_json(_damaged(path, value))
    with pytest.raises(StateError, match="not a JSON object"):
        StatusDocument.from_json([1])


def test_a_request_asks_for_the_generation_after_the_status_s() -> None:
    from runtime.control import next_generation

    assert next_generation({"generation": 7}) == 8
    assert next_generation(None) == 1 and next_generation({}) == 1
    for bad in (-1, True, 2.0, "3"):   # a status nobody should trust starts the count again
        assert next_generation({"generation": bad}) == 1
