"""Benchmark: warm rebuild after a one-line change vs cold build of the same stack, in one run.

On one fresh emulated device, ``stacks/updates`` is deployed from nothing (cold: both built
services build every step), then the last line of ``api/Dockerfile`` is changed and the stack
deployed again (warm: only api rebuilds, the earlier steps from the layer cache), ``rounds``
times. Reported, from the runtime's own update reports plus the device engine:

- ``warm_cold_build_ratio``: warm build seconds / cold build seconds of the stack (goal ≤ 0.25);
- ``warm_cold_apply_ratio``: the same for the whole apply, wall clock as ``deploy()`` saw it;
- ``downtime_seconds``: how long the changed service was down per update (old stopped → new running);
- ``untouched_restarts``: restarts/recreates of the services the change does not concern (goal 0);
- ``rollback``: a release whose api cannot start, applied with a 10 s probation for api:
  ``seconds`` from the runtime deciding to roll back to api running its previous image again,
  ``bad_release_seconds`` from the deploy of the bad release to the previous one running again
  (its build included), and ``builds`` the rollback itself made (goal 0).

The device runs its runtime without a global probation (``ARMSTACK_PROBATION=0``), so the update figures
time the update alone; the rollback round turns probation on for api with its label.

- ``labels``: the runtime's image labels put on the built ``api`` image (every step cached), as
  the engine's LABEL steps (how a build request's labels are applied) vs one commit (how the
  runtime applies them, ``runtime.imagelabels``), on the same device engine.

Run alone with ``python -m bench.updates [--quick] [--arch arm64] [--out FILE]``; ``bench``'s
runner calls :func:`run` with a started device that runs no stack yet.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.device import EmulatedDevice
from harness.errors import DeployError
from harness.report import UpdateReport
from harness.waits import wait_for
from runtime.engine.reading import engine_time

STACK = Path(__file__).resolve().parents[1] / "stacks" / "updates"
CHANGED = "api"
UNTOUCHED = ("worker", "cache")
GOAL_RATIO = 0.25


def _set_last_line(stack: Path, line: str) -> None:
    dockerfile = stack / CHANGED / "Dockerfile"
    lines = dockerfile.read_text().rstrip("\n").splitlines()
    dockerfile.write_text("\n".join([*lines[:-1], line]) + "\n")


def _containers(device: EmulatedDevice) -> dict[str, tuple[str, str, int]]:
    """service -> (container id, StartedAt, engine restart count) on the device."""
    out: dict[str, tuple[str, str, int]] = {}
    for c in device.engine.containers.list(all=True, filters={"label": "io.armstack.stack=updates"}):
        out[c.labels["io.armstack.service"]] = (c.id, c.attrs["State"]["StartedAt"], int(c.attrs["RestartCount"]))
    return out


def _rollback(device: EmulatedDevice, stack: Path) -> dict[str, Any]:
    """Apply a release whose api cannot start; time the way back to the previous one."""
    compose = stack / "compose.yaml"
    anchor = f"  {CHANGED}:\n    build: ./{CHANGED}\n"
    compose.write_text(compose.read_text().replace(anchor, anchor + "    labels:\n      io.armstack.probation: 10s\n"))
    good = device.deploy(stack)   # the label is a new configuration: a good release on probation
    if not good.ok:
        raise RuntimeError(f"the release with the probation label failed: {good.error}")
    previous = device.container(CHANGED).image.id
    builds_before = sum(1 for ln in device.logs() if "building " in ln)
    _set_last_line(stack, "RUN echo bad > /app/version && rm /app/server.py")
    t0 = time.time()
    try:
        device.deploy(stack)
        raise RuntimeError("the bad release was not rolled back")
    except DeployError as exc:
        if "rolled back" not in exc.runtime_message:
            raise
    c = wait_for(lambda: (c := device.container(CHANGED)).status == "running" and c.image.id == previous and c,
                 device.timeout(60), f"{CHANGED} back on its previous image")
    back_at = engine_time(c.attrs["State"]["StartedAt"]) or time.time()   # the engine's clock is the host's
    decided_at = float(((device.status() or {}).get("rollback") or {}).get("at") or t0)
    builds = sum(1 for ln in device.logs() if "building " in ln) - builds_before - 1   # minus the bad release's
    return {"seconds": round(back_at - decided_at, 3), "bad_release_seconds": round(back_at - t0, 3),
            "builds": builds}


def _timed_deploy(device: EmulatedDevice, stack: Path) -> tuple[UpdateReport, float]:
    t0 = time.monotonic()
    report = device.deploy(stack)
    return report, time.monotonic() - t0


def _built(api: Any, context: Path, labels: dict[str, str]) -> str:
    from runtime.buildctx import context_tar
    from runtime.compose.model import BuildSpec

    image = None
    for chunk in api.build(fileobj=context_tar(BuildSpec(context=str(context))), custom_context=True,
                           labels=labels, rm=True, forcerm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"the build of {context.name} failed: {chunk['error']}")
        image = (chunk.get("aux") or {}).get("ID", image)
    if image is None:
        raise RuntimeError(f"the build of {context.name} named no image")
    return str(image)


def _labelling(device: EmulatedDevice, stack: Path, rounds: int) -> dict[str, float]:
    """Seconds to a labelled ``api`` image whose steps are all cached: labels in the build request
    (the engine appends a LABEL step per label) vs the build without them and one commit."""
    from runtime import labels as L
    from runtime.imagelabels import label_image

    api = device.engine.api
    by_steps: list[float] = []
    by_commit: list[float] = []
    for i in range(rounds):
        # New values each round, as a real rebuild has (its hash): the LABEL steps are never cached.
        labels = {L.IMAGE_STACK: "updates", L.IMAGE_SERVICE: CHANGED, L.BUILD_HASH: f"bench-{i}-{time.time_ns()}"}
        t0 = time.monotonic()
        _built(api, stack / CHANGED, labels)
        by_steps.append(time.monotonic() - t0)
        labels[L.BUILD_HASH] += "-commit"
        t0 = time.monotonic()
        if label_image(api, _built(api, stack / CHANGED, {}), labels) is None:
            raise RuntimeError(f"{CHANGED}'s image has no command: it cannot be labelled by a commit")
        by_commit.append(time.monotonic() - t0)
    steps, commit = statistics.median(by_steps), statistics.median(by_commit)
    return {"label_count": float(len(labels)), "build_with_label_steps_seconds": round(steps, 3),
            "build_then_one_commit_seconds": round(commit, 3), "saving_seconds": round(steps - commit, 3)}


def run(device: EmulatedDevice, quick: bool) -> dict[str, Any]:
    """Measure cold vs warm updates on ``device`` (started, no stack deployed); returns the figures."""
    rounds = 1 if quick else 3
    with tempfile.TemporaryDirectory(prefix="armstack-bench-updates-") as tmp:
        stack = Path(tmp) / "updates"
        shutil.copytree(STACK, stack)

        cold, cold_wall = _timed_deploy(device, stack)
        if not cold.ok:
            raise RuntimeError(f"the cold deploy failed: {cold.error}")
        cold_build = cold.build_seconds
        warm_runs: list[dict[str, Any]] = []
        for i in range(rounds):
            before = _containers(device)
            _set_last_line(stack, f"RUN echo bench-{i + 2} > /app/version")
            warm, warm_wall = _timed_deploy(device, stack)
            after = _containers(device)
            changed = warm.service(CHANGED)
            restarts = sum(1 for s in UNTOUCHED if before.get(s) != after.get(s))
            warm_runs.append({
                "build_seconds": warm.build_seconds,
                "apply_seconds": round(warm_wall, 3),
                "rebuilt": warm.rebuilt,
                "steps": changed.steps,
                "cached": changed.cached,
                "downtime_seconds": changed.downtime_seconds,
                "untouched_restarts": restarts,
            })
        rollback = _rollback(device, stack)
        labelling = _labelling(device, stack, 3)

    warm_build = statistics.median(r["build_seconds"] for r in warm_runs)
    warm_wall = statistics.median(r["apply_seconds"] for r in warm_runs)
    ratio = warm_build / cold_build if cold_build else float("nan")
    return {
        "benchmark": "updates",
        "arch": device.arch.name,
        "quick": quick,
        "rounds": rounds,
        "cold": {"build_seconds": round(cold_build, 3), "apply_seconds": round(cold_wall, 3),
                 "rebuilt": cold.rebuilt,
                 "steps": sum(s.steps for s in cold.services.values())},
        "warm": warm_runs,
        "warm_build_seconds": round(warm_build, 3),
        "warm_apply_seconds": round(warm_wall, 3),
        "warm_cold_build_ratio": round(ratio, 4),
        "warm_cold_apply_ratio": round(warm_wall / cold_wall, 4) if cold_wall else None,
        "goal_ratio": GOAL_RATIO,
        "goal_met": ratio <= GOAL_RATIO and all(r["untouched_restarts"] == 0 for r in warm_runs),
        "downtime_seconds": round(statistics.median(r["downtime_seconds"] for r in warm_runs), 3),
        "untouched_restarts": sum(r["untouched_restarts"] for r in warm_runs),
        "rollback": rollback,
        "labels": labelling,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.updates", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one warm round instead of three")
    parser.add_argument("--arch", default="arm64")
    parser.add_argument("--disk", default="2G", help="the device's SD card size")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    with EmulatedDevice(arch=args.arch, disk=args.disk) as device:
        result = run(device, args.quick)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(f"warm/cold build: {result['warm_cold_build_ratio']:.1%} (goal ≤ {GOAL_RATIO:.0%}), "
          f"downtime of {CHANGED}: {result['downtime_seconds']:.2f}s, "
          f"untouched restarts: {result['untouched_restarts']}, rollback: {result['rollback']['seconds']:.2f}s "
          f"({result['rollback']['builds']} builds)", file=sys.stderr)
    return 0 if result["goal_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
