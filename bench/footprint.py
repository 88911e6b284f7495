"""The runtime's idle footprint on the device: resident memory and CPU while supervising a stack.

Measured from the host on the runtime container's process. Under emulation that process is
QEMU running the arm64 Python, so RSS includes QEMU's own translation buffers: an upper bound
of what a real arm64 board would show.
"""

from __future__ import annotations

import os
import time
from typing import Any

from bench.common import REPO, Result


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
    pid = device._container("runtime").attrs["State"]["Pid"]
    window = 15.0 if quick else 60.0
    _, cpu0 = _rss_and_cpu(pid)
    t0 = time.monotonic()
    time.sleep(window)  # the measurement window itself: idle time is what is measured
    rss, cpu1 = _rss_and_cpu(pid)
    elapsed = time.monotonic() - t0
    result.row(f"idle RSS of the runtime ({device.arch.name}, incl. QEMU)", rss / 2**20, "MiB")
    result.row(f"idle CPU of the runtime ({device.arch.name}, incl. QEMU)", 100 * (cpu1 - cpu0) / elapsed, "%")
    return result
