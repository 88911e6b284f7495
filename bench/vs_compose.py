"""Boot and update of torrent-box: the runtime vs Debian's docker-compose 1.29, on one device.

Both sides run the same stack files on the same emulated device, one after the other, and
every phase ends at the same point: each service's container running, healthy where it has
a healthcheck (``files`` has one), timed by polling the device engine.

- cold boot: no image of the stack on the device (and so no build cache): the runtime's
  first ``up`` vs ``docker-compose up -d``; both build both images.
- warm boot: images present, no containers: the runtime started again vs ``docker-compose
  up -d`` after ``docker-compose down``.
- update: one line appended to ``files/healthcheck.rb`` (a source file of one service): the
  runtime's apply vs ``docker-compose build && docker-compose up -d``. Also reported: the
  changed service's downtime (its old container's die → the new one's start, engine events)
  and how many containers each side restarted.

Between the sides every image the first one built is removed, so the second starts as cold.
Before either, both images are built once and thrown away: the packages they download then
come equally fast to both sides (mirrors and proxies cache), rather than faster to the second.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import REPO, Result
from harness.archive import tar_directory
from harness.waits import wait_for

STACK = REPO / "stacks" / "torrent-box"
SERVICES = ("transmission", "files")
CHANGED = "files"
COMPOSE_PROJECT = "tbcompose"
PRIME_PROJECT = "tbprime"


@dataclass(frozen=True)
class Side:
    """How to find one side's containers on the device engine."""

    name: str
    project_label: str    # label=value that selects the side's stack containers
    service_key: str      # label key holding the service name


RUNTIME = Side("runtime", "io.armstack.stack=torrent-box", "io.armstack.service")
COMPOSE = Side("docker-compose 1.29", f"com.docker.compose.project={COMPOSE_PROJECT}", "com.docker.compose.service")


def _containers(device: Any, side: Side, *, all: bool = False) -> dict[str, Any]:
    return {c.labels[side.service_key]: c
            for c in device.engine.containers.list(all=all, filters={"label": side.project_label})}


def _started(device: Any, side: Side) -> dict[str, tuple[str, str]]:
    return {s: (c.id, c.attrs["State"]["StartedAt"]) for s, c in _containers(device, side).items()}


def _wait_up(device: Any, side: Side, t0: float, timeout: float,
             replaced: dict[str, tuple[str, str]] | None = None) -> float:
    """Seconds from ``t0`` until every service runs (healthy where checked); with ``replaced``,
    the changed service must also run in a container other than the one recorded there."""

    def up() -> bool:
        now = _containers(device, side)
        if set(now) != set(SERVICES):
            return False
        if replaced and (now[CHANGED].id, now[CHANGED].attrs["State"]["StartedAt"]) == replaced[CHANGED]:
            return False
        return all(c.status == "running" and c.attrs["State"].get("Health", {}).get("Status") in (None, "healthy")
                   for c in now.values())

    wait_for(up, timeout, f"torrent-box under the {side.name} to run", interval=0.25,
             describe=lambda: str({s: c.status for s, c in _containers(device, side, all=True).items()}))
    return time.monotonic() - t0


def _downtime(device: Any, side: Side, since: float, old_id: str) -> float:
    """The changed service's old container's die → the next start of that service (engine events)."""
    events = device.engine.events(since=int(since), until=int(time.time()) + 1, decode=True,
                                  filters={"type": "container", "event": ["die", "start"],
                                           "label": f"{side.service_key}={CHANGED}"})
    died: int | None = None
    for ev in events:
        if ev["Action"] == "die" and ev["id"] == old_id and died is None:
            died = ev["timeNano"]
        elif ev["Action"] == "start" and died is not None and ev["id"] != old_id:
            return float((ev["timeNano"] - died) / 1e9)
    raise RuntimeError(f"no die of the old {CHANGED} container followed by a start under the {side.name}")


def _update(device: Any, side: Side, change: Any, timeout: float) -> dict[str, float]:
    """Apply a one-line change with ``change()``; wall time, downtime and containers restarted."""
    before = _started(device, side)
    since = time.time() - 1
    t0 = time.monotonic()
    change()
    seconds = _wait_up(device, side, t0, timeout, replaced=before)
    after = _started(device, side)
    return {"seconds": seconds, "downtime": _downtime(device, side, since, before[CHANGED][0]),
            "restarted": float(sum(1 for s in SERVICES if after.get(s) != before[s]))}


def _remove_stack_images(device: Any) -> None:
    """Every image the runtime built for torrent-box, with its build cache (the parent layers)."""
    for image in device.engine.images.list(filters={"label": "io.armstack.image.stack=torrent-box"}):
        device.engine.images.remove(image.id, force=True)
    device.engine.images.prune(filters={"dangling": True})


def _prime(device: Any, stack: Path) -> None:
    """Build the stack's images once under a scratch project, then remove them (see the module doc)."""
    from bench.baseline import Compose

    stack_dir = f"/srv/armstack/stacks/{PRIME_PROJECT}"
    device.shell(f"rm -rf {stack_dir} && mkdir -p {stack_dir}")
    device._put_archive(stack_dir, tar_directory(stack, "."))
    compose = Compose(device, stack_dir, PRIME_PROJECT)
    try:
        compose.run("build")
    finally:
        for image in device.engine.images.list(name=f"{PRIME_PROJECT}_*"):
            device.engine.images.remove(image.id, force=True)
        device.engine.images.prune(filters={"dangling": True})
        device.shell(f"rm -rf {stack_dir}")


def _runtime(device: Any, stack: Path, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    report = device.deploy(stack)
    out["cold"] = _wait_up(device, RUNTIME, t0, timeout)
    out["cold_cached_steps"] = sum(s.cached for s in report.services.values())

    # Warm: stopped (the runtime stops its stack on SIGTERM), containers removed, started again.
    rt = device.runtime_container()
    rt.stop(timeout=int(device.timeout(20)))
    for c in _containers(device, RUNTIME, all=True).values():
        c.remove(force=True)
    t0 = time.monotonic()
    rt.start()
    out["warm"] = _wait_up(device, RUNTIME, t0, timeout)

    with (stack / CHANGED / "healthcheck.rb").open("a") as f:
        f.write("# update 1\n")
    out["update"] = _update(device, RUNTIME, lambda: device.deploy(stack), timeout)

    rt.stop(timeout=int(device.timeout(20)))
    for c in _containers(device, RUNTIME, all=True).values():
        c.remove(force=True, v=True)
    _remove_stack_images(device)
    return out


def _compose(device: Any, timeout: float) -> dict[str, Any]:
    from bench.baseline import Compose

    stack_dir = f"/srv/armstack/stacks/{device.project}"
    compose = Compose(device, stack_dir, COMPOSE_PROJECT)
    out: dict[str, Any] = {}
    try:
        t0 = time.monotonic()
        log = compose.run("up", "-d")
        out["cold"] = _wait_up(device, COMPOSE, t0, timeout)
        out["cold_cached_steps"] = log.count("Using cache")

        compose.run("down")
        t0 = time.monotonic()
        compose.run("up", "-d")
        out["warm"] = _wait_up(device, COMPOSE, t0, timeout)

        device.shell(f"echo '# update 2' >> {stack_dir}/{CHANGED}/healthcheck.rb")
        out["update"] = _update(device, COMPOSE, lambda: (compose.run("build"), compose.run("up", "-d")), timeout)
    finally:
        compose.run("down", "-v", "--rmi", "local")
    return out


def run(device: Any, quick: bool = False) -> Result:
    """Both sides on ``device`` (started, no stack yet); one run of each phase."""
    result = Result("vs_compose")
    timeout = device.timeout(900)   # a cold build under QEMU with apt downloads
    with tempfile.TemporaryDirectory(prefix="armstack-bench-compose-") as tmp:
        stack = Path(tmp) / "torrent-box"
        shutil.copytree(STACK, stack)
        _prime(device, stack)
        rt = _runtime(device, stack, timeout)
    dc = _compose(device, timeout)
    arch = device.arch.name
    for phase, label in (("cold", "cold boot (images built)"), ("warm", "warm boot (images present)")):
        result.row(f"{label}, runtime ({arch})", rt[phase], "s")
        result.row(f"{label}, docker-compose 1.29 up -d ({arch})", dc[phase], "s")
        result.row(f"{label}: runtime / docker-compose", rt[phase] / dc[phase], "x")
    result.row(f"one-line change in {CHANGED}, runtime apply", rt["update"]["seconds"], "s")
    result.row(f"one-line change in {CHANGED}, docker-compose build && up -d", dc["update"]["seconds"], "s")
    result.row("update: runtime / docker-compose", rt["update"]["seconds"] / dc["update"]["seconds"], "x")
    result.row(f"downtime of {CHANGED} during the update, runtime", rt["update"]["downtime"], "s")
    result.row(f"downtime of {CHANGED} during the update, docker-compose", dc["update"]["downtime"], "s")
    result.row("containers restarted by the update, runtime", rt["update"]["restarted"], "")
    result.row("containers restarted by the update, docker-compose", dc["update"]["restarted"], "")
    result.notes.append(f"cold boots built from scratch: cached build steps runtime {rt['cold_cached_steps']}, "
                        f"docker-compose {dc['cold_cached_steps']}")
    result.series["cold boot, runtime"] = [rt["cold"]]
    result.series["cold boot, docker-compose"] = [dc["cold"]]
    result.series["warm boot, runtime"] = [rt["warm"]]
    result.series["warm boot, docker-compose"] = [dc["warm"]]
    result.series["update, runtime"] = [rt["update"]["seconds"]]
    result.series["update, docker-compose"] = [dc["update"]["seconds"]]
    return result
