"""The runtime's settings: flag, then environment variable, then default; bad values refused once."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, cast

import pytest

from runtime import cli
from runtime.disk import DiskPolicy, Threshold
from runtime.endpoint import ListenAddress
from runtime.settings import RuntimeSettings, SettingsError
from runtime.supervisor import Supervisor

pytestmark = pytest.mark.unit


def test_defaults_without_flags_or_environment() -> None:
    s = RuntimeSettings.from_environ({})
    assert (s.data_dir, s.release, s.disk, s.engine_root, s.default_restart, s.listen, s.color) == (
        Path("/data/armstack"), None, DiskPolicy(), None, "always", None, None)
    assert (s.extra_labels, s.systemd, s.engine_address) == ({}, {}, "the default socket")


def test_the_environment_fills_what_no_flag_gives() -> None:
    s = RuntimeSettings.from_environ({
        "ARMSTACK_DATA_DIR": "/srv/a", "ARMSTACK_EXTRA_LABELS": "a=1,b", "ARMSTACK_RELEASE": "r7",
        "ARMSTACK_DISK_HIGH": "70", "ARMSTACK_DISK_LOW": "60%", "ARMSTACK_KEEP_RELEASES": "0",
        "ARMSTACK_ENGINE_ROOT": "/var/lib/docker", "ARMSTACK_DEFAULT_RESTART": "no",
        "ARMSTACK_LISTEN": "tcp://127.0.0.1:9", "NO_COLOR": "1", "DOCKER_HOST": "tcp://e:2375",
        "COMPOSE_PROFILES": "a,,b", "NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "5", "HOME": "/root"})
    assert s.data_dir == Path("/srv/a") and s.extra_labels == {"a": "1", "b": ""} and s.release == "r7"
    assert (s.disk.high, s.disk.low, s.disk.keep_releases) == (Threshold(70), Threshold(60), 0)
    assert (s.engine_root, s.default_restart, s.listen, s.color) == (
        "/var/lib/docker", "no", ListenAddress("tcp", host="127.0.0.1", port=9), False)
    assert s.engine_address == "tcp://e:2375"
    assert s.environ["COMPOSE_PROFILES"] == "a,,b"   # read by the loader (runtime.compose.profiles)
    assert s.systemd == {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "5"}
    assert s.environ["HOME"] == "/root"   # compose files are interpolated with the whole environment


def test_flags_win_over_the_environment() -> None:
    args = cli.parse_args(["--data-dir", "/d", "--no-color", "--default-restart", "on-failure", "up",
                           "--release", "", "--disk-high", "90%", "--listen", "tcp://127.0.0.1:1"])
    s = RuntimeSettings.from_args(args, {"ARMSTACK_DATA_DIR": "/e", "ARMSTACK_DEFAULT_RESTART": "no",
                                         "ARMSTACK_RELEASE": "env", "ARMSTACK_DISK_HIGH": "bad",
                                         "ARMSTACK_LISTEN": "udp://x"})
    assert (s.data_dir, s.color, s.default_restart, s.release) == (Path("/d"), False, "on-failure", "")
    assert s.disk.high == Threshold(90) and s.listen == ListenAddress("tcp", host="127.0.0.1", port=1)


@pytest.mark.parametrize(("environ", "flags", "named"), [
    ({"ARMSTACK_DISK_HIGH": "lots"}, {}, "ARMSTACK_DISK_HIGH"),
    ({"ARMSTACK_DISK_LOW": "lots"}, {}, "ARMSTACK_DISK_LOW"),
    ({"ARMSTACK_KEEP_RELEASES": "x"}, {}, "ARMSTACK_KEEP_RELEASES"),
    ({"ARMSTACK_BUILD_CACHE_BUDGET": "x"}, {}, "ARMSTACK_BUILD_CACHE_BUDGET"),
    ({"ARMSTACK_DISK_HIGH": "50%"}, {}, "ARMSTACK_DISK_HIGH and ARMSTACK_DISK_LOW"),
    ({}, {"disk_low": "zz"}, "--disk-low"),
    ({"ARMSTACK_DEFAULT_RESTART": "sometimes"}, {}, "ARMSTACK_DEFAULT_RESTART"),
    ({"ARMSTACK_LISTEN": "udp://x:1"}, {}, "ARMSTACK_LISTEN"),
    ({}, {"listen": "udp://x:1"}, "--listen"),
])
def test_a_bad_value_is_refused_naming_where_it_came_from(environ: dict[str, str], flags: dict[str, str],
                                                          named: str) -> None:
    with pytest.raises(SettingsError) as info:
        RuntimeSettings.from_args(argparse.Namespace(**flags), environ)
    assert str(info.value).startswith(named)


def test_a_bad_disk_setting_is_the_same_usage_error_for_the_cli_and_the_supervisor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The supervisor used to warn and carry on with the default watermarks.
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: alpine\n")
    monkeypatch.setenv("ARMSTACK_DISK_HIGH", "lots")
    with pytest.raises(SettingsError, match="ARMSTACK_DISK_HIGH"):
        Supervisor(cast(Any, None), tmp_path / "compose.yaml")
    assert cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "d"), "apply"]) == 2
    assert "ARMSTACK_DISK_HIGH='lots'" in capsys.readouterr().err
    assert cli.exit_code_for(SettingsError("x")) == 2
