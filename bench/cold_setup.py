"""Cold setup: every root filesystem and image an emulated device needs, made from an empty cache.

``python -m bench --only cold_setup [--arch arm64|armv7|arm64,armv7]`` (``--arch all``: each arch
alone, then both at once, as the goals are stated: <= 4 min per arch, <= 6 min for both on 2 cores).
Each run gets a fresh cache directory and image names of its own, so nothing made before is
reused; the engine image (amd64) is part of every run. The plan's last line says each step's time.
"""

from __future__ import annotations

import os
import time

from bench.common import Result, cold_cache

KINDS = ("engine", "python", "debian", "runtime")


def _cold(arches: list[str]) -> float:
    from harness import images

    with cold_cache():
        t0 = time.perf_counter()
        images.prepare(arches, KINDS)
        return time.perf_counter() - t0


def run(quick: bool = False, arch: str = "arm64") -> Result:
    result = Result("cold-setup")
    runs = [["arm64"], ["armv7"], ["arm64", "armv7"]] if arch == "all" else [arch.split(",")]
    load = os.getloadavg()[0]
    for arches in runs:
        seconds = _cold(arches)
        goal = 240 if len(arches) == 1 else 360
        result.row(f"cold setup {' + '.join(arches)} from an empty cache (goal <= {goal})", seconds, "s")
    result.notes.append(f"load average when it started: {load:.1f} (2 cores; other work slows it)")
    return result
