"""Device tests in seconds: card templates, build reuse across devices, reset() — before/after in one run.

- device ready: a new card (mkfs, base images loaded: before) vs a clone of the card template (after);
- a plain device test of a stack with a build step (new device, deploy, running, removed): the
  first, which builds from nothing (and fills the build cache), vs the second, which loads the
  cached images; one of each per round, the minimum of each (``python -m bench.device_tests
  build-reuse`` runs just these);
- ``reset()`` of a device whose service crashed and whose card was filled, vs a new device and a
  deploy (what a function-scoped test pays), of one with every service up (the reset's own cost:
  the crashed service's health is not waited for), and a reset after a volume changed;
- ``snapshot()`` and a device started from a snapshot with its stack running.
"""

from __future__ import annotations

import time
from pathlib import Path

from bench.common import REPO, Result
from harness import buildcache
from harness.device import EmulatedDevice
from runtime.compose.source import StackSource

STACK = REPO / "stacks" / "minimal"          # healthcheck, a named volume: the reset figures
BUILT = REPO / "stacks" / "updates"          # build steps doing real CPU work: the build-reuse figures


def _ready(arch: str, **kw: object) -> float:
    t0 = time.perf_counter()
    with EmulatedDevice(arch=arch, **kw):   # type: ignore[arg-type]
        return time.perf_counter() - t0


def _plain_test(arch: str, stack: Path) -> float:
    """What a plain ``arm_device`` test of a stack costs: device, deploy (every service running), gone."""
    t0 = time.perf_counter()
    with EmulatedDevice(arch=arch) as d:
        d.deploy(stack)
        for service in d.services():
            d.wait_until_running(service, timeout=300)
    return time.perf_counter() - t0


def _forget_builds(arch: str, stack: Path) -> None:
    """Remove every build-cache entry of the stack's images, earlier builds too: the next test
    builds from nothing (an earlier build of a changed Dockerfile, which the update tests leave,
    would give it the unchanged steps, and the 'first' test would be a partial build)."""
    buildcache.forget(arch, buildcache.built_images(StackSource.of(stack)))


def build_reuse(result: Result, arch: str, rounds: int) -> None:
    """First (builds from nothing, fills the build cache) and second plain test of a stack with a
    build step, side by side in each round: a slow moment of a shared machine skews both alike."""
    firsts, seconds = [], []
    for _ in range(rounds):
        _forget_builds(arch, BUILT)
        firsts.append(_plain_test(arch, BUILT))
        seconds.append(_plain_test(arch, BUILT))
    first, second = min(firsts), min(seconds)
    result.row(f"plain device test of {BUILT.name}, first (builds, fills the build cache)", first, "s")
    result.row(f"plain device test of {BUILT.name}, second (images from the build cache)", second, "s")
    result.row("second / first (goal <= 0.30)", second / first, "x")
    result.series["build-reuse first"] = firsts
    result.series["build-reuse second"] = seconds


def run(quick: bool = False, arch: str = "arm64") -> Result:
    result = Result("device-tests")
    rounds = 1 if quick else 3
    _ready(arch)   # the template exists (made once per arch and card size)
    new_card = min(_ready(arch, template=False) for _ in range(rounds))
    cloned = min(_ready(arch) for _ in range(rounds))
    result.row(f"device ready, new card: mkfs + base images loaded ({arch}, before)", new_card, "s")
    result.row(f"device ready, card cloned from the template ({arch}, after)", cloned, "s")
    result.row("template clone / new card", cloned / new_card, "x")

    build_reuse(result, arch, rounds)

    with EmulatedDevice(arch=arch) as d:
        d.auto_reset_point = True
        t0 = time.perf_counter()
        d.deploy(STACK)
        d.wait_until_running("client", timeout=120)
        fresh = time.perf_counter() - t0 + cloned
        # Every service up, nothing to restore: what reset() itself costs, without waiting for a
        # service that a fault restarted to be healthy again.
        d.wait_until_running("server", timeout=120)
        idle = min(_timed_reset(d) for _ in range(rounds))
        resets, changed, full = [], [], []
        for _ in range(rounds):
            d.crash("server")
            d.wait_for(lambda: (d.services()["server"].restarts or 0) >= 1 or None, 60, "the crash to be counted")
            d.fill_disk(90)
            resets.append(_timed_reset(d))
        d.exec("server", "echo 1000 > /data/hits")
        changed.append(_timed_reset(d))
        full.append(_timed_reset(d, full=True))
        t0 = time.perf_counter()
        d.snapshot("bench-minimal")
        snap = time.perf_counter() - t0
    t0 = time.perf_counter()
    with EmulatedDevice(arch=arch, snapshot="bench-minimal") as s:
        s.wait_until_running("client", timeout=120)
        from_snapshot = time.perf_counter() - t0
        assert s._store is not None
        s._store.remove_snapshot("bench-minimal")
    result.row("new device + deploy minimal until running (what a function-scoped test pays)", fresh, "s")
    result.row("reset() with every service up (the reset's own cost)", idle, "s")
    result.row("reset() after a crash and a 90 % card, until running (goal <= 5)", min(resets), "s")
    result.row("reset() after a volume changed (its service created again)", min(changed), "s")
    result.row("reset(full=True): the whole card restored, device booted", min(full), "s")
    result.row("snapshot() of a running device", snap, "s")
    result.row("device from a snapshot, stack running", from_snapshot, "s")
    result.series["reset"] = resets
    return result


def _timed_reset(d: EmulatedDevice, full: bool = False) -> float:
    t0 = time.perf_counter()
    d.reset(full=full)
    d.wait_until_running("client", timeout=120)
    took = time.perf_counter() - t0
    assert {s.restarts for s in d.services().values()} == {0}
    assert d.disk_usage().percent < 80
    return took


if __name__ == "__main__":
    import signal
    import sys

    # ``python -m bench.device_tests build-reuse [--quick]``: only the build-reuse figures.
    if sys.argv[1:2] != ["build-reuse"]:
        sys.exit("usage: python -m bench.device_tests build-reuse [--quick]  (python -m bench runs the rest)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))   # devices removed on the way out
    part = Result("device-tests")
    build_reuse(part, "arm64", 1 if "--quick" in sys.argv else 3)
