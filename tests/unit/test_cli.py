"""CLI parsing, output formatting and exit-code mapping (no engine)."""

from __future__ import annotations

import docker.errors
import pytest

from runtime import cli
from runtime.actions import Build, Start, Wait
from runtime.errors import ComposeError, EngineError, Problem, StateError, SupervisorError


def test_global_flags_and_up_options() -> None:
    args = cli.parse_args(
        ["-f", "x.yaml", "-p", "demo", "--data-dir", "/tmp/d", "--log-format", "json", "--no-color",
         "up", "--detach-on-exit", "--reconcile-interval", "5"]
    )
    assert (args.file, args.project_name, args.data_dir, args.log_format, args.no_color) == (
        "x.yaml", "demo", "/tmp/d", "json", True)
    assert args.command == "up" and args.detach_on_exit and args.reconcile_interval == 5.0


def test_data_dir_defaults_to_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMSTACK_DATA_DIR", "/srv/state")
    assert cli.parse_args(["status"]).data_dir == "/srv/state"


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


def test_images_without_harness_is_clear(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    real = builtins.__import__

    def fake(name: str, *a: object, **k: object) -> object:
        if name == "harness.cli":
            raise ImportError(name)
        return real(name, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", fake)
    assert cli.main(["images", "list"]) == 2
    assert "harness" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["-f", "x.yml", "-p", "demo", "up"], ["up", "-f", "x.yml", "-p", "demo"],
                                  ["-f", "x.yml", "up", "-p", "demo"]])
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = cli.parse_args(argv)
    assert (args.command, args.file, args.project_name) == ("up", "x.yml", "demo")


def test_logs_f_means_follow_not_file() -> None:
    args = cli.parse_args(["-f", "x.yml", "logs", "-f", "web"])
    assert (args.file, args.follow, args.service) == ("x.yml", True, "web")
