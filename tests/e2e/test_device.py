"""The device kit on real emulated devices: arch, SD card, persistence, faults of the device itself."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness import cardstore
from harness.arch import get_arch
from harness.device import EmulatedDevice
from harness.plugin import save_artifacts
from harness.waits import wait_for
from tests.e2e.conftest import hits


@pytest.mark.quick
def test_device_runs_stack_on_its_arch(arm_device: EmulatedDevice, stacks: Path, tmp_path: Path) -> None:
    _runs_stack_on_its_arch(arm_device, stacks, tmp_path)


@pytest.mark.quick
@pytest.mark.device(arch="armv7")
def test_armv7_device_runs_stack(arm_device: EmulatedDevice, stacks: Path, tmp_path: Path) -> None:
    assert arm_device.arch.name == "armv7"
    _runs_stack_on_its_arch(arm_device, stacks, tmp_path)


def _runs_stack_on_its_arch(arm_device: EmulatedDevice, stacks: Path, tmp_path: Path) -> None:
    arch = get_arch(arm_device.arch.name)
    arm_device.deploy(stacks / "minimal")
    for service in ("server", "client"):
        arm_device.wait_until_running(service, timeout=60)
    # Stack containers and the runtime itself run as the device's arch, under QEMU.
    assert arm_device.exec("server", "uname -m").output.strip() == arch.uname
    runtime = arm_device.runtime_container()
    assert runtime.exec_run(["uname", "-m"]).output.decode().strip() == arch.uname
    base = arm_device.engine.images.get("python:3.11-slim-bookworm")
    assert base.attrs["Architecture"] == arch.platform.split("/")[1]
    # Running is not listening: the port is read from the server's own network namespace.
    arm_device.wait_for_port("server", 8000, timeout=20)
    # The client reaches the server by name, and both show up prefixed in the runtime's output.
    line = arm_device.wait_for_log("client", r"hits: \d+", timeout=20, since="start")
    assert line.startswith("client") and " | hits: " in line
    assert any(ln.startswith("server") and " | " in ln for ln in arm_device.logs())
    # Failure artefacts: written on demand here, by the plugin when a test fails.
    folder = save_artifacts(arm_device, tmp_path / "artefacts")
    names = {p.name for p in folder.iterdir()}
    assert {"runtime.log", "engine.log", "docker-ps-a.txt", "inspect.json", "status.json"} <= names
    assert "minimal-server-1" in (folder / "docker-ps-a.txt").read_text()
    assert json.loads((folder / "status.json").read_text())["project"] == "minimal"


@pytest.mark.quick
@pytest.mark.device(disk="1G")
def test_sd_card_size_and_enospc(arm_device: EmulatedDevice) -> None:
    usage = arm_device.disk_usage()
    assert 0.85 * (1 << 30) < usage.total <= (1 << 30), usage
    df = arm_device.shell("df -h /var/lib/docker").output
    assert "/dev/loop" in df
    filled = arm_device.fill_disk(100)
    assert filled.available < 16 << 20, filled
    # A container writing to its own layer lands on the card: it gets a real ENOSPC. Its output is
    # read through exec, which streams it: a full card has no room for the container's log file.
    writer = arm_device.engine.containers.run("debian:bookworm-slim", ["sleep", "600"], detach=True,
                                              labels={"io.armstack.test": "enospc"})
    try:
        res = writer.exec_run(["sh", "-c", "dd if=/dev/zero of=/big bs=1M count=64 2>&1; echo rc=$?"])
    finally:
        writer.remove(force=True, v=True)
    assert b"No space left on device" in res.output, res.output
    freed = arm_device.free_disk()
    assert freed.available > usage.available * 0.9


@pytest.mark.quick
def test_power_cut_and_reboot_keep_images_and_volume_data(arm_device: EmulatedDevice, stacks: Path) -> None:
    arm_device.deploy(stacks / "minimal")
    arm_device.wait_until_running("client", timeout=60)
    wait_for(lambda: hits(arm_device) >= 3, arm_device.timeout(20), "the client to register hits")
    images_before = {t for img in arm_device.engine.images.list() for t in img.tags}

    arm_device.power_cut()
    arm_device.wait_until_running("server", timeout=90)
    after_cut = hits(arm_device)
    assert after_cut >= 3
    assert images_before <= {t for img in arm_device.engine.images.list() for t in img.tags}

    arm_device.reboot()
    arm_device.wait_until_running("server", timeout=90)
    assert hits(arm_device) >= after_cut
    assert "minimal-server:latest" in {t for img in arm_device.engine.images.list() for t in img.tags}


@pytest.mark.full
@pytest.mark.parametrize("interrupt", [False, True], ids=["failing-test", "ctrl-c"])
def test_nothing_left_on_host_after_failure_or_interrupt(pytester: pytest.Pytester, interrupt: bool) -> None:
    import socket

    import docker

    host = docker.from_env()
    # The inner session blocks (until Ctrl-C arrives) or fails at once; it prints its PID, which
    # every object it creates carries in its owner label.
    pytester.makepyfile(test_inner=textwrap.dedent(f"""
        import os, threading
        def test_fails(arm_device):
            print("DEVICE-UP", os.getpid(), flush=True)
            threading.Event().wait(600 if {interrupt!r} else 0)
            assert False, "failing on purpose"
    """))
    cmd = [sys.executable, "-m", "pytest", "-s", "-p", "no:cacheprovider", str(pytester.path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=pytester.path)
    assert proc.stdout is not None
    output, owned_while_up = [], (0, 0)
    owner = ""

    def owned() -> tuple[int, int]:
        """(containers, volumes) the inner session owns."""
        flt = {"label": f"io.armstack.owner={owner}"}
        return len(host.containers.list(all=True, filters=flt)), len(host.volumes.list(filters=flt))

    for line in proc.stdout:
        output.append(line)
        up = re.search(r"DEVICE-UP (\d+)$", line.strip())
        if up and not owner:   # the failure report quotes the print line too: take the real one
            owner = f"{socket.gethostname()}:{up.group(1)}"
            owned_while_up = owned()
            if interrupt:
                proc.send_signal(2)  # SIGINT, as Ctrl-C would
    proc.wait(timeout=600)
    # The inner session's home was the test's directory: its card store goes with it.
    cardstore.unmount_store(pytester.path / ".cache" / "armstack")
    text = "".join(output)
    assert owner, text
    # The device existed: its engine container and the volumes it keeps its card and sockets on.
    assert owned_while_up[0] >= 1 and owned_while_up[1] >= 1, f"the inner test's device should have existed: {text}"
    if not interrupt:
        assert "device artefacts saved under" in text, text
    assert owned() == (0, 0), f"objects of {owner} left behind"
