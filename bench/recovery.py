"""Crash → running again on an emulated device: the runtime vs the engine's own ``restart: always``.

A crash here is real: SIGKILL of the service's main process, which the engine sees as a die
(``docker kill`` would be a manual stop). Both sides are timed on the device engine's own
clock, from its ``die`` event to its ``start`` event. The runtime's event-to-action time (die
event read → start call issued) comes from its status.
"""

from __future__ import annotations

import statistics
import threading
import time
from typing import Any

from bench.common import REPO, Result
from harness.waits import wait_for
from runtime.logfollow import parse_timestamp


def _die_to_start(engine: Any, label: str, kill: Any, timeout: float) -> float:
    """Seconds between the die and the next start event of the container labelled ``label``."""
    stream = engine.events(decode=True, filters={"label": label, "type": "container", "event": ["die", "start"]})
    timer = threading.Timer(timeout, stream.close)  # never hang the benchmark on a missing event
    timer.start()
    died: int | None = None
    try:
        kill()
        for ev in stream:
            if ev["Action"] == "die" and died is None:
                died = ev["timeNano"]
            elif ev["Action"] == "start" and died is not None:
                return (ev["timeNano"] - died) / 1e9
    finally:
        timer.cancel()
        stream.close()
    raise TimeoutError(f"no die+start of {label} within {timeout}s")


def run(device: Any, quick: bool = False) -> Result:
    result = Result("recovery")
    device.deploy(REPO / "stacks" / "minimal")
    for s in ("server", "client"):
        device.wait_until_running(s, timeout=60)
    # The runtime: the first crash of each service restarts at once (later ones back off).
    runtime_times = []
    for service in ("server", "client"):
        runtime_times.append(_die_to_start(device.engine, f"io.armstack.service={service}",
                                           lambda s=service: device.crash(s), device.timeout(10)))
        # The client depends on a healthy server: crash it only once the server is healthy
        # again, or the sample measures the dependency wait rather than the restart.
        device.wait_until_running(service, timeout=60)
    raw = device.status() or {}
    e2a = [raw["services"][s].get("event_to_action") for s in ("server", "client")]
    # The engine's restart: always, same image, same kind of crash; a fresh container per sample.
    engine_times = []
    image = device.container("server").image.id
    for i in range(2 if quick else 5):
        c = device.engine.containers.run(image, name=f"bench-always-{i}", detach=True,
                                         restart_policy={"Name": "always"}, labels={"bench": f"always-{i}"})
        try:
            wait_for(lambda cid=c.id: device.engine.containers.get(cid).status == "running", device.timeout(10),
                     "the restart: always container to run")
            pid = device.engine.containers.get(c.id).attrs["State"]["Pid"]
            engine_times.append(_die_to_start(device.engine, f"bench=always-{i}",
                                              lambda p=pid: device.shell(f"kill -9 {p}", check=False),
                                              device.timeout(10)))
        finally:
            c.remove(force=True)
    recipe = _recipe(device, interval=5.0 if quick else 10.0)
    rt, eng = statistics.median(runtime_times), statistics.median(engine_times)
    result.row(f"crash → running, runtime ({device.arch.name}, median)", rt, "s")
    result.row(f"crash → running, engine restart: always ({device.arch.name}, median)", eng, "s")
    result.row("runtime / engine restart: always", rt / eng if eng else float("nan"), "x")
    known = [x for x in e2a if x is not None]
    if known:
        result.row("event → action (die event read → start issued), runtime", statistics.median(known), "s")
    result.row("containers restarted per crash, runtime", 1, "")
    result.row(f"crash → running, old recipe loop polling every {recipe['interval']:.0f} s", recipe["total"], "s")
    result.row("  of which waiting for the next poll", recipe["wait"], "s")
    result.row("  of which docker-compose down + up -d of the whole stack", recipe["down_up"], "s")
    result.row("containers restarted per crash, old recipe", recipe["restarted"], "")
    headline = 150.0 + recipe["down_up"]
    result.row("expected crash → running, old recipe at its 5-minute interval (150 s mean wait + down/up)",
               headline, "s")
    result.row("old recipe (5 min) / runtime", headline / rt, "x")
    result.series["runtime"] = runtime_times
    result.series["restart: always"] = engine_times
    result.series[f"recipe, {recipe['interval']:.0f} s poll"] = [recipe["total"]]
    result.series["recipe, 5 min poll (expected)"] = [headline]
    return result


def _recipe(device: Any, interval: float) -> dict[str, float]:
    """The 2016 keep-alive loop on the same device and stack: crash → both services running again."""
    from bench.baseline import Compose

    stack_dir = f"/srv/armstack/stacks/{device.project}"
    # compose 1.29 predates the top-level `name:` key; the project name is given instead. The
    # recipe kept its stack alive with its loop alone: no engine restart policy to hide a crash.
    device.shell(f"sed -e '/^name:/d' -e '/restart:/d' {stack_dir}/compose.yaml > {stack_dir}/compose-recipe.yml")
    compose = Compose(device, stack_dir, "recipe", "compose-recipe.yml")
    compose.run("up", "-d")
    label = "com.docker.compose.project=recipe"

    def running() -> dict[str, str]:
        return {c.labels["com.docker.compose.service"]: c.id
                for c in device.engine.containers.list(filters={"label": label}) if c.status == "running"}

    wait_for(lambda: len(running()) == 2, device.timeout(30), "the recipe's stack to run")
    loop = compose.start_recipe(interval)
    try:
        before = running()
        server = device.engine.containers.get(before["server"])
        t0 = time.time()
        device.shell(f"kill -9 {server.attrs['State']['Pid']}")
        after = wait_for(lambda: (r := running()) and len(r) == 2 and r["server"] != before["server"] and r,
                         device.timeout(60) + interval, "the recipe to bring the stack back")
        total = time.time() - t0
        detected = next(parse_timestamp(ln.split(" ", 1)[0]) / 1e9
                        for ln in loop.logs(timestamps=True).decode().splitlines() if "has exited" in ln)
        restarted = sum(1 for s in before if after.get(s) != before[s])
    finally:
        loop.remove(force=True)
        compose.run("down", "-v")
    wait = max(0.0, detected - t0)
    return {"interval": interval, "total": total, "wait": wait, "down_up": total - wait, "restarted": restarted}

