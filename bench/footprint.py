"""The runtime's idle footprint on the device: resident memory and CPU while supervising a stack.

Measured from the host on the runtime container's process. Under emulation that process is
QEMU running the arm64 Python, so RSS includes QEMU's own translation buffers: an upper bound
of what a real arm64 board would show.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import REPO, Result
from harness.waits import wait_for


def _rss_and_cpu(pid: int) -> tuple[int, float]:
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith("VmRSS:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def run(device: Any, quick: bool = False) -> Result:
    result = Result("footprint")
    if device.project is None:
        device.deploy(REPO / "stacks" / "minimal")
    device.wait_until_running("client", timeout=60)
    pid = device.runtime_container().attrs["State"]["Pid"]
    window = 15.0 if quick else 60.0
    _, cpu0 = _rss_and_cpu(pid)
    t0 = time.monotonic()
    time.sleep(window)  # the measurement window itself: idle time is what is measured
    rss, cpu1 = _rss_and_cpu(pid)
    elapsed = time.monotonic() - t0
    result.row(f"idle RSS of the runtime ({device.arch.name}, incl. QEMU)", rss / 2**20, "MiB")
    result.row(f"idle CPU of the runtime ({device.arch.name}, incl. QEMU)", 100 * (cpu1 - cpu0) / elapsed, "%")
    native_rss, native_cpu = _native(device, window)
    result.row("idle RSS of the runtime (native x86_64 Python, same stack)", native_rss / 2**20, "MiB")
    result.row("idle CPU of the runtime (native x86_64 Python, same stack)", native_cpu, "%")
    return result


def _native(device: Any, window: float) -> tuple[int, float]:
    """The same runtime run natively on the host, supervising its own copy of the stack on the
    device's engine: Python's own footprint, without QEMU's."""
    ip = device.engine_container().attrs["NetworkSettings"]["IPAddress"]
    data = tempfile.mkdtemp(prefix="armstack-footprint-")
    env = {**os.environ, "DOCKER_HOST": f"tcp://{ip}:2375", "NO_COLOR": "1"}
    cmd = [sys.executable, "-m", "runtime", "up", "-f", str(REPO / "stacks" / "minimal" / "compose.yaml"),
           "-p", "footprint", "--data-dir", data]
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        status = Path(data) / "footprint" / "status.json"
        wait_for(lambda: status.exists() and (json.loads(status.read_text()).get("last_apply") or {}).get("ok"),
                 device.timeout(60), "the native runtime to apply the stack")
        _, cpu0 = _rss_and_cpu(proc.pid)
        t0 = time.monotonic()
        time.sleep(window)  # the idle window being measured
        rss, cpu1 = _rss_and_cpu(proc.pid)
        return rss, 100 * (cpu1 - cpu0) / (time.monotonic() - t0)
    finally:
        proc.terminate()   # SIGTERM: it stops its copy of the stack gracefully
        proc.wait(timeout=120)
        shutil.rmtree(data, ignore_errors=True)
