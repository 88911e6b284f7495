"""Cold setup: every root filesystem and image an emulated device needs, made from an empty cache.

``python -m bench --only cold_setup [--arch arm64|armv7|arm64,armv7]`` (``--arch all``: each arch
alone, then both at once, as the goals are stated: <= 4 min per arch, <= 6 min for both on 2 cores).
Each run gets a fresh cache directory and image names of its own, so nothing made before is
reused; the engine image (amd64) is part of every run. The plan's last line says each step's time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import docker

from bench.common import Result

KINDS = ("engine", "python", "debian", "runtime")
PREFIX = "armstack-bench-cold"


def _cold(arches: list[str]) -> float:
    from harness import images

    cache = tempfile.mkdtemp(prefix="armstack-cold-", dir="/var/tmp")   # on disk: a /tmp may be a small tmpfs
    saved = {k: os.environ.get(k) for k in ("ARMSTACK_CACHE", "ARMSTACK_IMAGE_PREFIX")}
    os.environ.update(ARMSTACK_CACHE=cache, ARMSTACK_IMAGE_PREFIX=PREFIX)
    try:
        t0 = time.perf_counter()
        images.prepare(arches, KINDS)
        return time.perf_counter() - t0
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cache, ignore_errors=True)
        host = docker.from_env()
        for img in host.images.list():
            if any(t.startswith(f"{PREFIX}/") for t in img.tags):
                host.images.remove(img.id, force=True)


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
