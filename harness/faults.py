"""Faults a stack on an emulated device is put through, and how the device engine sees each one.

The difference that matters is between a *crash* and a *manual stop*: the engine counts
``docker kill``/``docker stop`` as a stop on purpose (its own restart policy then leaves the
container down), while a process that dies by itself is a crash. Every fault here says which
one it is:

========================  ==================================================  ===============
fault                     how it is injected                                  the engine sees
========================  ==================================================  ===============
``crash(service, sig)``   ``kill -SIG`` of the main pid, from the device      a crash
``oom(service)``          main pid's oom_score_adj raised to 1000, then a     a crash,
                          process in the container allocates past             OOMKilled,
                          ``mem_limit``: the kernel's OOM killer takes main   exit 137
``crash_loop(service)``   SIGKILL of the main pid each time it starts again   crashes
``make_unhealthy(...)``   a stack-provided command run in the container       health_status:
                          (e.g. ``touch /tmp/unhealthy``) that fails its      unhealthy; the
                          healthcheck                                         process runs on
``kill_engine()``         SIGKILL of the device's dockerd, from the host      engine crash
``kill_runtime()``        SIGKILL of the runtime, from the host               runtime crash
``reboot()``              runtime and engine stopped in order, started again  orderly stops
``power_cut()``           the card's write cache dropped (harness.card), then  power loss
                          runtime and engine SIGKILLed, started again
``fill_disk(percent)``    a file nothing owns fills the SD card               a full card
========================  ==================================================  ===============

The first four live here, written against :class:`~harness.protocol.FaultTarget` (part of ``Device``)
(devices expose them as ``device.oom(...)`` etc.); the device-level ones are methods of the
devices that have the matching capability (``harness.protocol.POWER``, ``ENGINE_KILL``, ...).
A new fault is a function here, a method of the protocol and its one-line delegation in
:class:`~harness.device.DeviceBase`.
Each waits for the engine to confirm the fault happened, through its event stream, and
raises :class:`~harness.errors.FaultError` when it cannot be injected or does not take.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.errors import FaultError
from harness.events import EventRecorder

if TYPE_CHECKING:
    from harness.protocol import FaultTarget

# Grows in 16 MiB steps of touched memory (bytes * n writes every page, unlike a calloc'ed
# bytearray); `tail /dev/zero` buffers an endless line where there is no python3.
ALLOCATE = ("python3 -c 'x = []\nwhile True: x.append(b\"\\1\" * (16 << 20))' 2>/dev/null"
            " || tail /dev/zero")


def _main_pid(device: FaultTarget, service: str) -> tuple[Any, int]:
    c = device.container(service)
    pid = int(c.attrs["State"]["Pid"] or 0)
    if not pid:
        raise FaultError(f"service {service!r} on {device.name} has no running main process")
    return c, pid


def crash(device: FaultTarget, service: str, signal: str = "SIGKILL") -> str:
    """A real crash: ``signal`` to the service's main process, sent from the device (not
    ``docker kill``, which the engine counts as a manual stop). Returns the container id."""
    c, pid = _main_pid(device, service)
    device.shell(f"kill -s {signal.upper().removeprefix('SIG')} {pid}")
    return str(c.id)


def oom(device: FaultTarget, service: str, timeout: float = 60.0) -> str:
    """A real crash by the kernel's OOM killer; returns the container id.

    The service must have a ``mem_limit``. Its main process is made the OOM killer's first
    choice (oom_score_adj 1000, set from the device's shell), then a process in the same
    container allocates until the cgroup is out of memory. Returns once the engine reported
    the container's ``oom`` event and its death.
    """
    c, pid = _main_pid(device, service)
    if not c.attrs["HostConfig"].get("Memory"):
        raise FaultError(f"service {service!r} has no mem_limit, so it cannot run out of memory; "
                         "give it one in the compose file (e.g. mem_limit: 256m)")
    with EventRecorder(device.engine, {"type": "container", "container": c.id}) as seen:
        device.shell(f"echo 1000 > /proc/{pid}/oom_score_adj")
        c.exec_run(["sh", "-c", ALLOCATE], detach=True)
        device.wait_for(lambda: {"oom", "die"} <= set(seen.actions()), timeout,
                 f"the OOM killer to end service {service!r}", describe=lambda: f"events: {seen.actions()}",
                 interval=0.5)
    return str(c.id)


def crash_loop(device: FaultTarget, service: str, times: int = 5, timeout: float = 60.0) -> str:
    """Real crashes in a row: SIGKILL the main process ``times`` times, each time as soon as the
    service runs again (whatever backoff the runtime applies in between). Returns the container id
    of the last crash."""
    seen: set[str] = set()
    cid = ""
    for n in range(times):
        def restarted() -> tuple[Any, int] | None:
            c = device.find_container(service)
            if c is None or c.status != "running" or not c.attrs["State"]["Pid"]:
                return None
            key = f"{c.id}/{c.attrs['State']['StartedAt']}"
            return (c, int(c.attrs["State"]["Pid"])) if key not in seen else None

        c, pid = device.wait_for(restarted, timeout,
                          f"service {service!r} to run again before crash {n + 1} of {times}", interval=0.1)
        seen.add(f"{c.id}/{c.attrs['State']['StartedAt']}")
        device.shell(f"kill -s KILL {pid}")
        cid = str(c.id)
    return cid


def make_unhealthy(device: FaultTarget, service: str, command: str, timeout: float = 60.0) -> str:
    """Run ``command`` in the service's container to make its healthcheck fail; nothing is stopped.

    Returns once the engine reported the container ``unhealthy``, with the container id. What
    heals the service (the runtime restarting it, the switch living on a tmpfs) is the stack's.
    """
    c = device.container(service)
    if not c.attrs["Config"].get("Healthcheck"):
        raise FaultError(f"service {service!r} has no healthcheck, so it cannot become unhealthy")
    with EventRecorder(device.engine, {"type": "container", "container": c.id}) as seen:
        res = device.exec(service, command)
        if res.exit_code != 0:
            raise FaultError(f"`{command}` failed in service {service!r} (exit {res.exit_code}): "
                             f"{res.output.strip()}")
        device.wait_for(lambda: any("unhealthy" in a for a in seen.actions()), timeout,
                 f"service {service!r} to be reported unhealthy", describe=lambda: f"events: {seen.actions()}",
                 interval=0.5)
    return str(c.id)

