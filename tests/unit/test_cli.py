"""CLI parsing, output formatting and exit-code mapping (no engine)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from runtime import cli
from runtime.actions import Build, Start, Wait
from runtime.control import ProjectLock
from runtime.errors import (
    ArmstackError,
    BuildContextError,
    ComposeError,
    DiskFullError,
    EngineError,
    EngineUnreachable,
    Problem,
    StateError,
    SupervisorError,
    UsageError,
)
from runtime.settings import RuntimeSettings
from runtime.state import StateStore


def test_global_flags_and_up_options() -> None:
    args = cli.parse_args(
        ["-f", "x.yaml", "-p", "demo", "--data-dir", "/tmp/d", "--log-format", "json", "--no-color",
         "up", "--detach-on-exit", "--reconcile-interval", "5"]
    )
    assert (args.file, args.project_name, args.data_dir, args.log_format, args.no_color) == (
        "x.yaml", "demo", "/tmp/d", "json", True)
    assert args.command == "up" and args.detach_on_exit and args.reconcile_interval == 5.0


def test_data_dir_defaults_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    args = cli.parse_args(["status"])
    assert RuntimeSettings.from_args(args, {"ARMSTACK_DATA_DIR": "/srv/state"}).data_dir == Path("/srv/state")
    args = cli.parse_args(["--data-dir", "/tmp/d", "status"])
    assert RuntimeSettings.from_args(args, {"ARMSTACK_DATA_DIR": "/srv/state"}).data_dir == Path("/tmp/d")


@pytest.mark.parametrize("argv", [["down", "-v"], ["logs", "-f", "web"], ["apply", "--json", "--timeout", "9"],
                                  ["plan", "--json"], ["status", "--json"], ["validate"]])
def test_commands_parse(argv: list[str]) -> None:
    assert cli.parse_args(argv).command == argv[0]


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(["frobnicate"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        cli.parse_args([])
    assert exc.value.code == 2


def test_help_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    out = capsys.readouterr().out
    for code in ("0 ", "1 ", "2 ", "3 ", "4 ", "130"):
        assert f"  {code}" in out


@pytest.mark.parametrize(("exc", "code"), [
    (ComposeError([Problem("f", "bad")]), 2),
    (SupervisorError("x"), 4),
    (docker.errors.DockerException("x"), 3),
    (EngineError("x"), 1),
    (StateError("x"), 1),
    (EngineUnreachable("x"), 3),
    (UsageError("x"), 2),
    (DiskFullError("x"), 1),
    (BuildContextError("x"), 1),
    (ArmstackError("x"), 1),
    (KeyboardInterrupt(), 130),
    (ValueError("x"), 1),
])
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert cli.exit_code_for(exc) == code


def test_plan_lines_shorten_ids() -> None:
    actions = [Build("db", "p-db", "a" * 32), Start("web", "f" * 64), Wait("api", "db", "service_healthy")]
    assert cli.plan_lines(actions) == [
        "Build service=db image=p-db build_hash=aaaaaaaaaaaa",
        "Start service=web container_id=ffffffffffff",
        "Wait service=api on=db condition=service_healthy",
    ]


def test_status_lines() -> None:
    status = {"project": "p", "generation": 3, "supervisor": {"pid": 42},
              "services": {"web": {"state": "running", "restart": "always (default)", "restarts": 2,
                                   "last_exit": 137, "backoff_until": None}},
              "last_apply": {"generation": 3, "ok": False, "error": "boom"}}
    lines = cli.status_lines(status)
    assert "pid 42" in lines[0]
    assert lines[2].split() == ["web", "running", "always", "(default)", "2", "137"]
    assert lines[1].index("STATE") == lines[2].index("running")
    assert lines[1].index("RESTART ") == lines[2].index("always")
    assert lines[1].index("LAST EXIT") + len("LAST EXIT") == lines[2].index("137") + len("137")
    assert lines[-1] == "last apply (generation 3): FAILED: boom"


def test_invalid_file_gives_one_message_and_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    depends_on: [b]\n")
    code = cli.main(["-f", str(tmp_path), "validate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "nothing was changed" in err


def test_missing_file_exit_2(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    assert cli.main(["-f", str(tmp_path / "nope.yaml"), "validate"]) == 2


@pytest.mark.parametrize("argv", [["images", "list"], ["chaos", "--faults", "3"]])
def test_harness_commands_without_harness_are_clear(argv: list[str], monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    real = builtins.__import__

    def fake(name: str, *a: object, **k: object) -> object:
        if name.startswith("harness"):
            raise ImportError(name)
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert f"armstack {argv[0]}" in err and "harness" in err


@pytest.mark.parametrize("argv", [["-f", "x.yml", "-p", "demo", "up"], ["up", "-f", "x.yml", "-p", "demo"],
                                  ["-f", "x.yml", "up", "-p", "demo"]])
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.parse_args(argv)
    assert (args.command, args.file, args.project_name) == ("up", "x.yml", "demo")


def test_logs_f_means_follow_not_file() -> None:
    args = cli.parse_args(["-f", "x.yml", "logs", "-f", "web"])
    assert (args.file, args.follow, args.service) == ("x.yml", True, "web")


# -- signalling only the supervisor -----------------------------------------------------------


@pytest.fixture
def held_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, StateStore, list[Any]]]:
    """A project whose lock is held (by this process) and an os.kill that only records."""
    (tmp_path / "compose.yaml").write_text("name: demo\nservices:\n  web:\n    image: alpine:3.19\n")
    store = StateStore(tmp_path / "data", "demo")
    store.ensure_dir()
    kills: list[Any] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))

    def no_engine(settings: Any) -> Any:
        raise EngineUnreachable("no engine in unit tests")

    monkeypatch.setattr(cli, "_client", no_engine)
    with ProjectLock(store.lock_path) as lock:
        assert lock.acquire()
        yield tmp_path, store, kills


@pytest.mark.parametrize("pid_text", ["-1", "0", "1", "garbage", ""])
@pytest.mark.parametrize("command", ["down", "apply"])
def test_a_pid_file_that_names_no_process_is_never_signalled(
        held_project: tuple[Path, StateStore, list[Any]], pid_text: str, command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path, store, kills = held_project
    store.pid_path.write_text(pid_text)
    code = cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), command, "--timeout", "0.1"])
    assert kills == []
    assert code == 4 and "pid" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["down", "apply"])
def test_a_pid_file_that_names_another_process_is_never_signalled(
        held_project: tuple[Path, StateStore, list[Any]], command: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    # The lock is held by this process; the pid file names another live one (a reused pid).
    tmp_path, store, kills = held_project
    other = subprocess.Popen(["sleep", "60"])   # a live process of our own, not the lock holder
    try:
        store.pid_path.write_text(str(other.pid))
        code = cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), command, "--timeout", "0.1"])
        signalled = list(kills)
    finally:
        subprocess.run(["kill", "-9", str(other.pid)], check=False)   # os.kill is the recorder here
        other.wait()
    assert signalled == []
    assert code == 4 and f"held by pid {os.getpid()}" in capsys.readouterr().err


def test_a_stale_pid_file_with_a_free_lock_is_not_signalled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text("name: demo\nservices:\n  web:\n    image: alpine:3.19\n")
    store = StateStore(tmp_path / "data", "demo")
    store.ensure_dir()
    store.pid_path.write_text(str(os.getppid()))   # left by a power cut; the pid now someone else's
    kills: list[Any] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: kills.append((pid, sig)))
    monkeypatch.setattr(cli, "_client", lambda settings: (_ for _ in ()).throw(EngineUnreachable("no engine")))
    assert cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), "down"]) == 3
    assert kills == []


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
@pytest.mark.parametrize("command", ["status", "down", "apply"])
def test_a_state_directory_of_another_user_is_refused(tmp_path: Path, command: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text("name: demo\nservices:\n  web:\n    image: alpine:3.19\n")
    planted = tmp_path / "data" / "demo"
    planted.mkdir(parents=True, mode=0o700)
    (planted / "supervisor.pid").write_text("-1")
    os.chown(planted, 12345, -1)
    code = cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), command])
    err = capsys.readouterr().err
    assert code == 1 and "belongs to uid 12345" in err and "Traceback" not in err


@pytest.mark.parametrize(("status", "says"), [
    ('{"project": "demo", "services": {"web": {"state": 5}}}', "services.web.state"),
    ('{"project": "demo", "services": "web"}', "services"),
    ('{"project": "demo", "services": {"web": {"state": "running"}}, "disk": {"percent": "x"}}', "disk.percent"),
    (b'{"project": "\xff"}', "status.json"),
])
def test_status_says_an_unreadable_status_is_unreadable(
        held_project: tuple[Path, StateStore, list[Any]], status: str | bytes, says: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path, store, _ = held_project
    store.status_path.write_bytes(status if isinstance(status, bytes) else status.encode())
    for argv in (["status"], ["status", "--json"]):
        code = cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), *argv])
        err = capsys.readouterr().err
        assert code == 1 and "unreadable" in err and says in err and "Traceback" not in err


def test_status_without_the_files_services_is_not_ok(
        held_project: tuple[Path, StateStore, list[Any]], capsys: pytest.CaptureFixture[str]) -> None:
    tmp_path, store, _ = held_project
    store.write_status({"project": "demo", "generation": 1, "supervisor": {"pid": os.getpid()}, "services": {}})
    assert cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), "status"]) == 1
    assert "web" in capsys.readouterr().out


def test_status_lines_of_a_stack_no_supervisor_runs() -> None:
    from runtime.state import ServiceStatus, StatusDocument

    doc = StatusDocument(project="p", services={"web": ServiceStatus(state="missing", restarts=None)})
    lines = cli.status_lines(doc)
    assert "no supervisor running" in lines[0]
    assert lines[2].split() == ["web", "missing", "-", "-", "-"]
    assert not cli.status_ok(doc) and cli.status_ok(doc.with_services({}))
