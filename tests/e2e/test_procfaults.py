"""Process and time faults on an emulated device (harness.procfaults): pause, CPU starvation, clock jumps.

The minimal stack's client GETs ``/`` from the server every second and logs each answer; the
server logs every request it serves.
"""

from __future__ import annotations

import time
from pathlib import Path

import docker.errors
import pytest

from harness.device import EmulatedDevice
from tests.e2e.conftest import HIT, up_minimal


def _window(device: EmulatedDevice, seconds: float) -> tuple[int, int]:
    """(client hits logged, client requests served) in ``seconds`` (scaled by the arch's factor).

    A rate is the observation here, so the window is a fixed time, not a wait for an event."""
    client, server = len(device.logs("client")), len(device.logs("server"))
    time.sleep(device.timeout(seconds))
    hits = [ln for ln in device.logs("client")[client:] if "hits:" in ln]
    gets = [ln for ln in device.logs("server")[server:] if '"GET / ' in ln]
    return len(hits), len(gets)


def _busy_seconds(device: EmulatedDevice) -> float:
    """Wall time of a fixed shell loop run in the client's container (under its CPU limits)."""
    t0 = time.monotonic()
    res = device.exec("client", "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done")
    assert res.exit_code == 0, res.output
    return time.monotonic() - t0


@pytest.mark.full
def test_pause_freezes_a_service_and_starve_cpu_slows_it(arm_device: EmulatedDevice, stacks: Path) -> None:
    d = arm_device
    up_minimal(d, stacks)
    restarts = d.services()["client"].restarts

    d.pause("client")
    assert d.container("client", running=False).status == "paused"
    with pytest.raises(docker.errors.APIError, match="paused"):
        d.exec("client", "true")                     # nothing runs in a frozen container
    hits, gets = _window(d, 2)
    assert (hits, gets) == (0, 0), "a paused client neither logs nor sends a request"
    d.resume("client")
    d.wait_for_log("client", HIT, timeout=30)
    # A pause is nothing the runtime counts: the same container, no restart.
    assert d.services()["client"].restarts == restarts

    # The client is mostly asleep, so its own rate hardly changes; a fixed amount of work run in
    # its container (its cgroup, its quota) shows the cap.
    normal = _busy_seconds(d)
    cid = d.starve_cpu("client", cpus=0.05)
    host = d.container("client").attrs["HostConfig"]
    assert (host["CpuQuota"], host["CpuPeriod"]) == (5000, 100_000), host
    starved = _busy_seconds(d)
    d.heal_cpu()
    host = d.container("client").attrs["HostConfig"]
    assert host["CpuQuota"] in (0, -1), host
    after = _busy_seconds(d)
    print(f"a fixed shell loop in the client: {normal:.1f} s, at 0.05 CPU {starved:.1f} s, healed {after:.1f} s")
    assert starved > 2 * normal and after < starved / 2, (normal, starved, after)
    assert d.container("client").id == cid and d.services()["client"].restarts == restarts


@pytest.mark.full
def test_clock_jumps_of_the_runtime(arm_device: EmulatedDevice, stacks: Path) -> None:
    """The runtime's wall clock jumps back a day and then two days forward: it keeps
    restarting a crashed service, applies the stack, and the times it records follow its clock."""
    d = arm_device
    up_minimal(d, stacks)
    for offset in (-86_400.0, 86_400.0):
        assert d.clock_jump(offset - d.clock_jump(0)) == offset
        before = d.services()["server"].restarts or 0
        d.crash("server")

        def restarted(before: int = before) -> bool:
            return (d.services()["server"].restarts or 0) > before

        d.wait_for(restarted, 60, "the runtime to restart the crashed server")
        d.wait_until_running("server", timeout=60)
        d.deploy(stacks / "minimal")
        at = float((d.status() or {})["last_apply"]["finished_at"])
        assert abs(at - (time.time() + offset)) < 120, (at, offset)
        assert d.services()["client"].status == "running"
    d.heal_clock()
    d.deploy(stacks / "minimal")
    assert abs(float((d.status() or {})["last_apply"]["finished_at"]) - time.time()) < 120


# What a stack's program reads of its clocks: the realtime clock (date, Python) and how long a
# half-second Python sleep took by the container's own monotonic clock.
_CLOCK_PROBE = ("date +%s.%N; python3 -c 'import time; t0 = time.monotonic(); time.sleep(0.5); "
                "print(time.monotonic() - t0); print(time.time())'")


@pytest.mark.full
def test_clock_jumps_of_the_stack(arm_device: EmulatedDevice, stacks: Path) -> None:
    """clock_jump moves the realtime clock of the stack's programs (a new `docker exec` and the
    Python in it) by the device's offset, forward and back; their monotonic clock, and so a
    sleep, stays real; heal_clock puts them on the real clock; the container's configuration is
    the one compose asked for."""
    d = arm_device
    assert "stack-clock" in d.capabilities
    up_minimal(d, stacks)

    def offset_seen() -> tuple[float, float, float, float]:
        """(host time before the probe, date's reading, Python's reading, host time after it);
        the probe's half-second sleep checked on the way."""
        before = time.time()
        res = d.exec("client", _CLOCK_PROBE)
        after = time.time()
        assert res.exit_code == 0, res.output
        date, slept, py = (float(x) for x in res.output.split())
        assert 0.5 <= slept < 0.5 + d.timeout(1.0), f"time.sleep(0.5) took {slept:.3f} s in the container"
        return before, date, py, after

    for jump, expected in ((86_400.0, 86_400.0), (-3_600.0, 82_800.0), (None, 0.0)):
        if jump is None:
            d.heal_clock()
        else:
            assert d.clock_jump(jump) == expected
        before, date, py, after = offset_seen()
        for seen in (date, py):
            assert before + expected - 1 <= seen <= after + expected + 1, (expected, before, seen, after)

    # The service's own process (started by runc, not by an exec) has the shim loaded too.
    maps = d.exec("client", "cat /proc/1/maps")
    assert maps.exit_code == 0 and "/dev/.armstack-clockshim.so" in maps.output, maps.output[-2000:]
    client = d.container("client").attrs
    assert client["HostConfig"]["Runtime"] == "runc"
    assert not [m for m in client["Mounts"] if "armstack-clock" in m["Destination"] + m.get("Source", "")]
