"""Crash → running again on an emulated device: the runtime vs the engine's own ``restart: always``.

A crash here is real: SIGKILL of the service's main process, which the engine sees as a die
(``docker kill`` would be a manual stop). Both sides are timed on the device engine's own
clock, from its ``die`` event to its ``start`` event. The runtime's event-to-action time (die
event read → start call issued) comes from its status.
"""

from __future__ import annotations

import threading
from typing import Any

from bench.common import REPO, Result


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
    raw = device.status() or {}
    e2a = [raw["services"][s].get("event_to_action") for s in ("server", "client")]
    # The engine's restart: always, same image, same kind of crash; a fresh container per sample.
    engine_times = []
    image = device.container("server").image.id
    for i in range(2 if quick else 5):
        c = device.engine.containers.run(image, name=f"bench-always-{i}", detach=True,
                                         restart_policy={"Name": "always"}, labels={"bench": f"always-{i}"})
        try:
            device.shell(f"until [ \"$(docker -H unix:///run/armstack/docker.sock inspect -f '{{{{.State.Running}}}}' "
                         f"{c.id})\" = true ]; do sleep 0.05; done")
            pid = device.engine.containers.get(c.id).attrs["State"]["Pid"]
            engine_times.append(_die_to_start(device.engine, f"bench=always-{i}",
                                              lambda p=pid: device.shell(f"kill -9 {p}"), device.timeout(10)))
        finally:
            c.remove(force=True)
    rt, eng = min(runtime_times), min(engine_times)
    result.row(f"crash → running, runtime ({device.arch.name})", rt, "s")
    result.row(f"crash → running, engine restart: always ({device.arch.name})", eng, "s")
    result.row("runtime / engine restart: always", rt / eng if eng else float("nan"), "x")
    known = [x for x in e2a if x is not None]
    if known:
        result.row("event → action (die event read → start issued), runtime", min(known), "s")
    result.row("containers restarted per crash, runtime", 1, "")
    result.series["runtime"] = runtime_times
    result.series["restart: always"] = engine_times
    return result
