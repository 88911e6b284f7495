"""Pure parts of the device kit: arch table, sizes, disk maths, ownership, capability probing."""

from __future__ import annotations

import os
import socket

import pytest

from harness import capabilities, images, session
from harness.arch import get_arch
from harness.device import (
    UNIX_PATH_MAX,
    DiskUsage,
    ExecResult,
    engine_socket_path,
    parse_size,
    stack_source,
    supervisor_since_start,
)
from harness.errors import DeployError, SetupError
from runtime.compose.source import StackSource


@pytest.mark.parametrize(("name", "uname", "platform"), [
    ("arm64", "aarch64", "linux/arm64"),
    ("aarch64", "aarch64", "linux/arm64"),
    ("armv7", "armv7l", "linux/arm/v7"),
    ("armhf", "armv7l", "linux/arm/v7"),
    ("amd64", "x86_64", "linux/amd64"),
])
def test_arch_aliases(name: str, uname: str, platform: str) -> None:
    arch = get_arch(name)
    assert (arch.uname, arch.platform) == (uname, platform)


def test_native_arch_has_no_emulation_factor() -> None:
    assert get_arch("amd64").factor == 1.0 and get_arch("amd64").qemu is None
    assert get_arch("arm64").factor > 1.0 and get_arch("arm64").qemu == "qemu-aarch64"


def test_unknown_arch_says_what_is_allowed() -> None:
    with pytest.raises(SetupError, match="arm64, armv7, amd64"):
        get_arch("mips")


@pytest.mark.parametrize(("text", "expected"), [
    ("768M", 768 << 20), ("2G", 2 << 30), ("2g", 2 << 30), ("1.5G", int(1.5 * (1 << 30))),
    ("512MiB", 512 << 20), ("100k", 100 << 10), ("4096", 4096),
])
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "two gigs", "2X", "-1G"])
def test_parse_size_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


def test_disk_percent_matches_df() -> None:
    # df's Use% is used / (used + available): reserved blocks do not count as free.
    usage = DiskUsage(used=80, total=110, available=20)
    assert usage.percent == pytest.approx(80.0)
    assert DiskUsage(used=0, total=0).percent == 0.0


def test_labels_name_owner_and_session() -> None:
    lbls = session.labels("dev1")
    assert lbls[session.HARNESS] == "1"
    assert lbls[session.SESSION] == session.SESSION_ID
    assert lbls[session.OWNER] == f"{socket.gethostname()}:{os.getpid()}"
    assert lbls[session.DEVICE] == "dev1"


def test_owner_alive_only_for_live_local_pids() -> None:
    host = socket.gethostname()
    assert session.owner_alive(f"{host}:{os.getpid()}")
    assert not session.owner_alive(f"{host}:999999999")
    assert not session.owner_alive("")
    # Another machine's objects on a shared engine are never judged dead from here.
    assert session.owner_alive("some-other-host:1")


def test_missing_caps_reads_bounding_set(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import builtins
    import io

    real_open = builtins.open
    all_but_sys_resource = ((1 << 41) - 1) & ~(1 << 24)

    def fake_open(path: str, *a: object, **k: object) -> object:
        if path == "/proc/self/status":
            return io.StringIO(f"Name:\tx\nCapBnd:\t{all_but_sys_resource:016x}\n")
        return real_open(path, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr(builtins, "open", fake_open)
    assert capabilities._missing_caps() == ["SYS_RESOURCE"]


def test_rootfs_cache_key_depends_on_arch_and_packages() -> None:
    arm, amd = get_arch("arm64"), get_arch("amd64")
    assert images._key(arm, ("python3",)) != images._key(amd, ("python3",))
    assert images._key(arm, ("python3",)) != images._key(arm, ("python3", "curl"))
    assert images._key(arm, ("a", "b")) == images._key(arm, ("b", "a"))


def test_host_tags_never_use_official_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ARMSTACK_IMAGE_PREFIX", raising=False)
    for kind in ("debian", "python", "engine"):
        tag = images.host_tag(kind, get_arch("arm64"))
        assert tag.startswith("armstack/"), tag


def test_mirror_comes_from_machine_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMSTACK_DEBIAN_MIRROR", "http://mirror.example/debian")
    assert images.mirror() == "http://mirror.example/debian"


class _Device:
    """Stands in for a device and its one service container, whose main process has ``pid``
    (0: the container has just exited)."""

    name = "dev"
    id = "c0"

    def __init__(self, pid: int) -> None:
        self.attrs = {"State": {"Pid": pid}}
        self.commands: list[str] = []

    def container(self, service: str) -> _Device:
        return self

    def shell(self, cmd: str, check: bool = True) -> ExecResult:
        self.commands.append(cmd)
        return ExecResult(0, "")


@pytest.mark.parametrize("signal", ["SIGKILL", "TERM"])
def test_crash_without_a_main_process_is_refused_not_sent_to_pid_0(signal: str) -> None:
    from harness import faults
    from harness.errors import FaultError

    device = _Device(pid=0)
    with pytest.raises(FaultError, match="'web' on dev has no running main process"):
        faults.crash(device, "web", signal)  # type: ignore[arg-type]
    assert device.commands == []   # `kill 0` would signal the device shell's own process group


def test_crash_signals_the_main_process_by_name_without_sig() -> None:
    from harness import faults

    device = _Device(pid=4242)
    assert faults.crash(device, "web", "sigterm") == "c0"  # type: ignore[arg-type]
    assert device.commands == ["kill -s TERM 4242"]


def test_a_deploy_names_a_stack_source_or_a_path_with_profiles() -> None:
    src = StackSource(("/s/compose.yaml", "/s/device.yaml"), "demo", ("debug",))
    assert stack_source(src) is src
    assert stack_source("/s", ["debug"]) == StackSource(("/s",), None, ("debug",))
    with pytest.raises(DeployError, match="not both"):
        stack_source(src, ["other"])


def test_a_runtime_counts_as_settled_only_with_a_status_of_its_own_start() -> None:
    started = "2026-12-02T04:30:00.123456789Z"   # the container's (re)start, as the engine says it
    at = 1796185800.0                             # 2026-12-02 04:30:00 UTC
    assert supervisor_since_start({"supervisor": {"pid": 1, "started_at": at + 4.2}}, started)
    # The status of the supervisor killed before the engine restarted the container: not this one's.
    assert not supervisor_since_start({"supervisor": {"pid": 1, "started_at": at - 30}}, started)
    assert not supervisor_since_start(None, started)
    assert not supervisor_since_start({"supervisor": {"started_at": True}}, started)
    assert not supervisor_since_start({"supervisor": {"started_at": at + 4}}, "not a time")


def test_engine_socket_path_only_where_a_client_can_connect() -> None:
    volumes = "/var/lib/docker/volumes/armstack-arm64-0123abcd-sock/_data"
    assert str(engine_socket_path(volumes)) == f"{volumes}/docker.sock"
    assert engine_socket_path(None) is None and engine_socket_path("") is None   # not a volume of this machine
    deep = "/" + "d" * (UNIX_PATH_MAX - len("/docker.sock") - 1)
    assert len(str(engine_socket_path(deep))) == UNIX_PATH_MAX
    assert engine_socket_path(deep + "d") is None   # too long for sun_path: TCP then
