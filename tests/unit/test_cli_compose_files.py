"""``-f`` repeated and ``--profile`` on the command line, carried to every load of the stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest

from runtime import cli
from runtime.compose.source import StackSource
from runtime.settings import RuntimeSettings
from runtime.supervisor import Supervisor, load_stack_or_problems

pytestmark = pytest.mark.unit

BASE = "services:\n  web:\n    image: nginx\n  debug:\n    image: busybox\n    profiles: [debug]\n"
OVERRIDE = "services:\n  web:\n    image: nginx:1.27\n"


@pytest.mark.parametrize("argv", [
    ["-f", "a.yaml", "-f", "b.yaml", "--profile", "x", "--profile", "y", "validate"],
    ["validate", "-f", "a.yaml", "-f", "b.yaml", "--profile", "x", "--profile", "y"],
    ["-f", "a.yaml", "--profile", "x", "validate", "-f", "b.yaml", "--profile", "y"],
])
def test_files_and_profiles_repeat(argv: list[str]) -> None:
    args = cli.parse_args(argv)
    assert (args.files, args.file, args.profiles) == (["a.yaml", "b.yaml"], "a.yaml", ["x", "y"])


def test_defaults_without_files_or_profiles() -> None:
    args = cli.parse_args(["validate"])
    assert (args.files, args.file, args.profiles) == (None, None, None)


def _stack_files(tmp_path: Path) -> tuple[Path, Path]:
    base, override = tmp_path / "compose.yaml", tmp_path / "override.yaml"
    base.write_text(BASE)
    override.write_text(OVERRIDE)
    return base, override


def test_validate_merges_the_files_and_enables_the_profile(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMPOSE_PROFILES", raising=False)
    base, override = _stack_files(tmp_path)
    assert cli.main(["-f", str(base), "-f", str(override), "validate"]) == 0
    assert "1 service(s)" in capsys.readouterr().out
    assert cli.main(["-f", str(base), "-f", str(override), "--profile", "debug", "validate"]) == 0
    assert "2 service(s)" in capsys.readouterr().out
    monkeypatch.setenv("COMPOSE_PROFILES", "debug")
    assert cli.main(["-f", str(base), "validate"]) == 0
    assert "2 service(s)" in capsys.readouterr().out


def test_supervisor_reloads_with_the_same_files_and_profiles(tmp_path: Path) -> None:
    base, override = _stack_files(tmp_path)
    source = StackSource.of([base, override], profiles=["debug"], env={})
    stack = load_stack_or_problems(source).stack
    assert (stack.service_names, stack.service("web").image) == (("web", "debug"), "nginx:1.27")
    # An apply request's source names its own main file and project: the overrides it does not
    # name do not apply, the profiles it names do.
    other = tmp_path / "other" / "compose.yaml"
    other.parent.mkdir()
    other.write_text(BASE)
    stack = load_stack_or_problems(StackSource.of(other, "x", ["debug"], env={})).stack
    assert (stack.project, stack.service_names, stack.service("web").image) == ("x", ("web", "debug"), "nginx")


def test_the_supervisor_takes_the_cli_source_whole(tmp_path: Path) -> None:
    base, override = _stack_files(tmp_path)
    args = cli.parse_args(["-f", str(base), "-f", str(override), "--profile", "debug", "-p", "demo", "up"])
    args.settings = RuntimeSettings(data_dir=tmp_path / "data", environ={})
    sup = Supervisor(cast(Any, None), cli._source(args), settings=args.settings)
    assert sup.source == StackSource((str(base), str(override)), "demo", ("debug",))
    assert sup.compose_path == base.resolve()
    assert load_stack_or_problems(sup.source).stack.service_names == ("web", "debug")


def test_the_loaders_warnings_come_back_with_the_stack_they_belong_to(tmp_path: Path) -> None:
    # Each load carries its own warnings (no table keyed by the stack's id that outlives it).
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "compose.yaml").write_text("services:\n  web:\n    image: x\n    unknownthing: 1\n")
    (tmp_path / "b" / "compose.yaml").write_text("services:\n  web:\n    image: x\n")
    warned = load_stack_or_problems(StackSource.of(tmp_path / "a", env={}))
    clean = load_stack_or_problems(StackSource.of(tmp_path / "b", env={}))
    assert [w.split(": ", 1)[1] for w in warned.warnings] == ["services.web.unknownthing: unknown key "
                                                              "'unknownthing' is ignored"]
    assert clean.warnings == () and clean.stack.service_names == ("web",)
