"""The systemd unit for a board: rendered from settings, accepted by systemd-analyze where it exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import cli
from runtime.systemd import UnitSettings, render_unit


def test_the_unit_runs_the_supervisor_under_notify_with_a_watchdog() -> None:
    text = render_unit(UnitSettings("/opt/armstack/bin/armstack", "/srv/my stack/compose.yaml",
                                    project="demo", watchdog_seconds=90))
    service = text.split("[Service]")[1].split("[Install]")[0].splitlines()
    assert "Type=notify" in service and "NotifyAccess=main" in service and "Restart=always" in service
    assert "WatchdogSec=90" in service
    exec_start = next(ln for ln in service if ln.startswith("ExecStart="))
    # Quoted for systemd's own word splitting: a path with a space stays one argument.
    assert exec_start == ("ExecStart=/opt/armstack/bin/armstack -f '/srv/my stack/compose.yaml' "
                          "--data-dir /var/lib/armstack -p demo up --listen unix:///run/armstack/armstack.sock")
    assert "Requires=docker.service" in text and "WantedBy=multi-user.target" in text


def test_no_watchdog_when_asked() -> None:
    assert "WatchdogSec" not in render_unit(UnitSettings("/a", "/b", watchdog_seconds=0))


@pytest.mark.parametrize("kw", [{"executable": "armstack"}, {"compose_file": "compose.yaml"},
                                {"watchdog_seconds": -1}])
def test_bad_settings_say_what_is_wrong(kw: dict[str, object]) -> None:
    base: dict[str, object] = {"executable": "/a", "compose_file": "/b"}
    with pytest.raises(ValueError, match="absolute|negative"):
        UnitSettings(**{**base, **kw})  # type: ignore[arg-type]


def test_the_cli_prints_a_unit_for_the_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n")
    assert cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), "systemd-unit",
                     "--executable", sys.executable]) == 0
    out = capsys.readouterr().out
    assert f"-f {tmp_path / 'compose.yaml'}" in out and f"--data-dir {tmp_path / 'data'}" in out


def test_the_unit_names_the_data_dir_the_environment_gives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n")
    monkeypatch.setenv("ARMSTACK_DATA_DIR", str(tmp_path / "state"))
    assert cli.main(["-f", str(tmp_path), "systemd-unit", "--executable", sys.executable]) == 0
    assert f"--data-dir {tmp_path / 'state'}" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n")
    unit = tmp_path / "armstack.service"
    unit.write_text(render_unit(UnitSettings(sys.executable, str(tmp_path / "compose.yaml"))))
    proc = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                          timeout=60)
    # docker.service is not installed on every test machine: that is the only complaint allowed.
    problems = [ln for ln in proc.stderr.splitlines() if ln.strip() and "docker.service" not in ln]
    assert problems == [], proc.stderr
