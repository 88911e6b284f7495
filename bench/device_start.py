"""Device spin-up: cold (nothing cached: root filesystems, image builds) and warm (images cached)."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

import docker

from bench.common import Result
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
    # Cold: a fresh cache and image names of its own, so nothing built before can be reused.
    cache = tempfile.mkdtemp(prefix="armstack-cold-")
    saved = {k: os.environ.get(k) for k in ("ARMSTACK_CACHE", "ARMSTACK_IMAGE_PREFIX")}
    os.environ.update(ARMSTACK_CACHE=cache, ARMSTACK_IMAGE_PREFIX="armstack-bench-cold")
    try:
        cold, cold_deployed = _start_stop(arch)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cache, ignore_errors=True)
        host = docker.from_env()
        for img in host.images.list():
            if any(t.startswith("armstack-bench-cold/") for t in img.tags):
                host.images.remove(img.id, force=True)
    result.row(f"cold start ({arch}, root filesystems + image builds)", cold, "s")
    result.row("cold / warm", cold / min(s for s, _ in warm), "x")
    result.series["cold start"] = [cold]
    return result
