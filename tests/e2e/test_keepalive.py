"""Keep-alive on an emulated device: only what crashed restarts, with backoff; supervisor and
engine restarts are survived without touching healthy services."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

import pytest

from harness.device import EmulatedDevice
from harness.errors import DeployError
from harness.waits import wait_for
from tests.e2e.conftest import hits

HERE = Path(__file__).resolve().parent


def _started(device: EmulatedDevice) -> dict[str, tuple[str, str]]:
    """service -> (container id, StartedAt) from the device engine."""
    out = {}
    for c in device.engine.containers.list(filters={"label": f"io.armstack.stack={device.project}"}):
        out[c.labels["io.armstack.service"]] = (c.id, c.attrs["State"]["StartedAt"])
    return out


def _up(device: EmulatedDevice, stack: Path, services: tuple[str, ...]) -> None:
    device.deploy(stack)
    for s in services:
        device.wait_until_running(s, timeout=60)


@pytest.mark.quick
def test_crash_restarts_only_that_service(arm_device: EmulatedDevice, stacks: Path) -> None:
    _up(arm_device, stacks / "minimal", ("server", "client"))
    before = _started(arm_device)
    killed = arm_device.crash("server")
    wait_for(lambda: arm_device.services()["server"].restarts >= 1, arm_device.timeout(10), "the restart of server")
    arm_device.wait_until_running("server", timeout=60)
    after = _started(arm_device)
    assert after["client"] == before["client"], "the client must not be touched"
    assert after["server"][0] == killed, "a crash restarts the same container"
    assert after["server"][1] != before["server"][1]
    state = arm_device.services()["server"]
    assert (state.restarts, state.last_exit) == (1, 137)
    # The prefixed log continues after the restart: the server announces itself a second time.
    wait_for(lambda: sum("server listening" in ln for ln in arm_device.logs("server")) >= 2,
             arm_device.timeout(10), "server's log after its restart")
    assert all(ln.split(" | ", 1)[0].strip() == "server" for ln in arm_device.logs("server"))


@pytest.mark.quick
def test_crash_loop_backs_off_with_growing_intervals(arm_device: EmulatedDevice) -> None:
    engine = arm_device.engine
    events: list[tuple[str, int]] = []
    done = threading.Event()
    stream = engine.events(decode=True, filters={"type": "container", "event": ["die", "start"],
                                                 "label": "io.armstack.service=flappy"})

    def collect() -> None:
        for ev in stream:
            events.append((ev["Action"], ev["timeNano"]))
            if sum(a == "die" for a, _ in events) >= 5:
                done.set()
                return

    threading.Thread(target=collect, daemon=True).start()
    # The apply reports the crash-looping service as a failure; the loop is what is observed.
    with contextlib.suppress(DeployError):
        arm_device.deploy(HERE / "stacks" / "crashloop")
    assert done.wait(arm_device.timeout(20)), f"only {events} seen"
    stream.close()
    # die → next start = the backoff delay + the engine's start time. The schedule (0, 1, 2, 4 s)
    # is a lower bound that load cannot shorten; load only adds to it, so bound it loosely above.
    waits = [(start - die) / 1e9 for (a, die), (b, start) in zip(events, events[1:], strict=False)
             if (a, b) == ("die", "start")]
    assert len(waits) >= 4, events
    for wait, floor in zip(waits, (0.0, 1.0, 2.0, 4.0), strict=False):
        assert floor - 0.05 <= wait <= floor + arm_device.timeout(3), waits
    wait_for(lambda: arm_device.services()["flappy"].crash_looping, arm_device.timeout(30),
             "flappy to be reported as crash looping")
    steady = arm_device.services()["steady"]
    assert (steady.status, steady.restarts) == ("running", 0)


@pytest.mark.quick
def test_runtime_killed_restarts_nothing(arm_device: EmulatedDevice, stacks: Path) -> None:
    _up(arm_device, stacks / "minimal", ("server", "client"))
    before = _started(arm_device)
    old_pid = (arm_device.status() or {})["supervisor"]["pid"]
    runtime = arm_device.runtime_container()
    restarts = runtime.attrs["RestartCount"]
    arm_device.kill_runtime()

    def readopted() -> Any:
        st = arm_device.status() or {}
        rt = arm_device.runtime_container()
        return rt.attrs["RestartCount"] > restarts and st["supervisor"]["ready"] and \
            st["supervisor"]["started_at"] > 0 and st["supervisor"]["pid"] and st["updated_at"]

    wait_for(readopted, arm_device.timeout(20), "the runtime to come back")
    assert (arm_device.status() or {})["supervisor"]["pid"] is not None and old_pid is not None
    assert _started(arm_device) == before, "adopted containers must keep running untouched"


@pytest.mark.quick
def test_engine_killed_stack_converges(arm_device: EmulatedDevice, stacks: Path) -> None:
    _up(arm_device, stacks / "minimal", ("server", "client"))
    hits_before = hits(arm_device)
    arm_device.kill_engine()
    for s in ("server", "client"):
        arm_device.wait_until_running(s, timeout=90)
    wait_for(lambda: hits(arm_device) > hits_before,
             arm_device.timeout(20), "the client to reach the server again")
