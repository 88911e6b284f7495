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
        "dropped_requests",
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
