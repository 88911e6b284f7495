"""Device spin-up: cold (nothing cached: root filesystems, image builds) and warm (images cached)."""

from __future__ import annotations

import time

from bench.common import Result, cold_cache
from harness.device import EmulatedDevice


def _start_stop(arch: str) -> tuple[float, float]:
    """Seconds to a started device (engine answering, base images loaded), and to a deployed minimal stack."""
    from bench.common import REPO

    t0 = time.perf_counter()
    with EmulatedDevice(arch=arch, disk="2G") as d:
        started = time.perf_counter() - t0
        d.deploy(REPO / "stacks" / "minimal")
        d.wait_until_running("client", timeout=60)
        deployed = time.perf_counter() - t0
    return started, deployed


def run(quick: bool = False, arch: str = "arm64") -> Result:
    result = Result("device-start")
    warm = [_start_stop(arch) for _ in range(1 if quick else 3)]
    result.row(f"warm start ({arch}, images cached)", min(s for s, _ in warm), "s")
    result.row(f"warm start + deploy minimal stack ({arch})", min(d for _, d in warm), "s")
    result.series["warm start"] = [s for s, _ in warm]
    if quick:
        result.notes.append("cold start skipped in quick mode (run `make bench` for it)")
        return result
    with cold_cache():
        cold, cold_deployed = _start_stop(arch)
    result.row(f"cold start ({arch}, root filesystems + image builds)", cold, "s")
    result.row("cold / warm", cold / min(s for s, _ in warm), "x")
    result.series["cold start"] = [cold]
    return result
