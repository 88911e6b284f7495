"""Process and time faults: a frozen service, a service starved of CPU, a jump of the wall clock.

==========================  ============================================  ======================
fault                       how it is injected                            the engine sees
==========================  ============================================  ======================
``pause(service)``          ``docker pause`` on the device engine: the    ``pause``; the process
                            cgroup freezer stops every process of it      runs on. Healthchecks
                                                                          fail (no exec into a
                                                                          frozen container)
``starve_cpu(service, c)``  ``docker update`` of the container's CPU      nothing; the service
                            quota to ``c`` CPUs (kept across restarts     is slow, may fail its
                            of the container)                             healthcheck
``clock_jump(seconds)``     the wall clock of the runtime and of the      nothing (the engine's
                            stack's containers moved by ``seconds``       own clock stays)
                            (realtime only; monotonic clocks untouched)
==========================  ============================================  ======================

Each has its heal: ``resume``, ``heal_cpu``, ``clock_jump(-offset)``/``heal_clock``.

The clock: a real clock jump moves every program's realtime clock and leaves the monotonic
one alone. libfaketime (Debian 12's 0.9.10) cannot do the second: with the monotonic clock
exempted its ``clock_nanosleep`` fails with EINVAL, and every ``time.sleep`` of Python 3.11
with it; without the exemption a backward jump freezes every timer. A time namespace cannot
move the realtime clock. So one offset file on the device (:data:`CLOCK_FILE`, on the stack
volume) is read by two hooks, and :func:`clock_jump` rewrites it:

- the runtime (Python) gets a ``sitecustomize`` (first on ``PYTHONPATH``) that adds the offset
  to ``time.time()``;
- every container the runtime creates for a service gets a preload library (harness/assets/clockshim.c)
  that adds it to the realtime ``clock_gettime``, ``gettimeofday``, ``time`` and
  ``timespec_get``: the engine's runc (harness/assets/runc-clock.sh) binds it, an
  ``/etc/ld.so.preload`` naming it and the clock directory into the container, the container's
  configuration (``docker inspect``) untouched. Only a glibc userland reads that preload list:
  musl (Alpine) images, statically linked programs (Go) and an image with a preload list of its
  own keep the real clock, as do the engine and the device shell. Only an emulated device's
  engine has that runc (capability ``stack-clock``); on a board only the runtime's clock moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import FaultError

if TYPE_CHECKING:
    from harness.protocol import FaultTarget

# On the stack volume: the runtime's, the device shell's and the engine's (runc-clock.sh binds it
# into the stack's containers at /dev/.armstack-clock, where clockshim.c reads the offset).
CLOCK_DIR = "/srv/armstack/clock"
CLOCK_FILE = f"{CLOCK_DIR}/offset"
CLOCK_HOOK = Path(__file__).resolve().parent / "assets" / "clock_sitecustomize.py"
CPU_PERIOD = 100_000                        # µs: the CFS period docker uses for --cpus


# -- pause -------------------------------------------------------------------------------------

def pause(device: FaultTarget, service: str) -> str:
    """Freeze every process of the service (``docker pause``); returns the container id."""
    c = device.container(service)
    if c.status == "paused":
        return str(c.id)
    c.pause()
    c.reload()
    if c.status != "paused":
        raise FaultError(f"service {service!r} did not freeze: the engine says {c.status!r}")
    return str(c.id)


def resume(device: FaultTarget, service: str) -> str:
    """Thaw a paused service; returns the container id (nothing to do if it is not paused)."""
    c = device.find_container(service, running=False)
    if c is None:
        raise FaultError(f"service {service!r} has no container on {device.name}")
    if c.status == "paused":
        c.unpause()
    return str(c.id)


def thaw_all(device: FaultTarget) -> list[str]:
    """Resume every paused container of the stack; returns their ids. Before the
    device goes away: a frozen process cannot be killed under the cgroup v1 freezer, so the
    engine's container could not be removed (and a power cut would leave it half dead)."""
    project = getattr(device, "project", None)
    label = f"io.armstack.stack={project}" if project else "io.armstack.service"
    thawed = []
    for c in device.engine.containers.list(filters={"status": "paused", "label": label}):   # the stack's only
        c.unpause()
        thawed.append(str(c.id))
    return thawed


# -- CPU ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CpuLimit:
    """A container's CPU limits as the engine holds them (0: none)."""

    nano_cpus: int = 0
    quota: int = 0
    period: int = 0

    @classmethod
    def of(cls, container: Any) -> CpuLimit:
        hc = container.attrs["HostConfig"]
        return cls(int(hc.get("NanoCpus") or 0), int(hc.get("CpuQuota") or 0), int(hc.get("CpuPeriod") or 0))


def starve_update(cpus: float, current: CpuLimit) -> dict[str, int]:
    """The engine's ``/containers/{id}/update`` body that caps a container at ``cpus`` CPUs.

    The engine refuses a quota next to NanoCpus (``cpus:``) and the other way round, and reads
    0 as "leave as it is": a container limited by ``cpus:`` gets fewer NanoCpus, every other one
    a CFS quota, which :func:`restore_update` can lift again with -1 (no limit).
    """
    if not cpus > 0:
        raise FaultError(f"cpus must be > 0 (a share of one CPU, e.g. 0.05), not {cpus}")
    if current.nano_cpus:
        return {"NanoCpus": int(cpus * 1e9)}
    period = current.period or CPU_PERIOD
    return {"CpuPeriod": period, "CpuQuota": max(1000, int(cpus * period))}   # the engine's floor: 1 ms


def restore_update(original: CpuLimit) -> dict[str, int]:
    """The update body that gives a container back its original limits."""
    if original.nano_cpus:
        return {"NanoCpus": original.nano_cpus}
    return {"CpuPeriod": original.period or CPU_PERIOD, "CpuQuota": original.quota or -1}


def _update(device: FaultTarget, container_id: str, body: dict[str, int]) -> None:
    api = device.engine.api
    # docker-py's update_container has no NanoCpus; the engine's endpoint takes it.
    api._result(api._post_json(api._url("/containers/{0}/update", container_id), data=body), True)


@dataclass(frozen=True)
class Starved:
    service: str
    container_id: str
    original: CpuLimit


def starve_cpu(device: FaultTarget, service: str, cpus: float = 0.05) -> Starved:
    """Cap the service's container at ``cpus`` CPUs (``docker update``); :func:`heal_cpu` lifts it."""
    c = device.container(service)
    original = CpuLimit.of(c)
    _update(device, c.id, starve_update(cpus, original))
    return Starved(service, str(c.id), original)


def heal_cpu(device: FaultTarget, starved: Starved) -> None:
    """Give the starved container its original CPU limits back (nothing if it is gone)."""
    c = device.find_container(starved.service, running=False)
    if c is not None and c.id == starved.container_id:
        _update(device, c.id, restore_update(starved.original))


# -- the clock of the runtime and of the stack --------------------------------------------------

def clock_env(image_env: list[str] | None) -> dict[str, str]:
    """Environment of a runtime container whose wall clock :func:`clock_jump` can move: the hook
    first on the image's own ``PYTHONPATH``."""
    path = next((e.split("=", 1)[1] for e in image_env or [] if e.startswith("PYTHONPATH=")), "")
    return {"ARMSTACK_CLOCK_FILE": CLOCK_FILE, "PYTHONPATH": ":".join(p for p in (CLOCK_DIR, path) if p)}


def install_clock_script() -> str:
    """Shell for the device that puts the hook in place, with no offset unless one was set."""
    hook = CLOCK_HOOK.read_text()
    return (f"mkdir -p {CLOCK_DIR} && cat > {CLOCK_DIR}/sitecustomize.py <<'ARMSTACK_EOF'\n{hook}ARMSTACK_EOF\n"
            f"[ -f {CLOCK_FILE} ] || echo 0 > {CLOCK_FILE}")


def parse_offset(text: str) -> float:
    try:
        return float(text.strip() or 0)
    except ValueError:
        return 0.0


def offset_text(seconds: float) -> str:
    """The offset file's contents: fixed-point decimal seconds, which both hooks parse (the
    shim reads no exponent), to the microsecond."""
    text = f"{float(seconds):.6f}"
    return "0.000000" if float(text) == 0 else text   # never "-0.000000"


def clock_offset(device: FaultTarget) -> float:
    """The device clock's offset from the real one, in seconds."""
    return parse_offset(device.shell(f"cat {CLOCK_FILE} 2>/dev/null", check=False).output)


def set_clock_offset(device: FaultTarget, seconds: float) -> float:
    # Rename over the old file: no hook ever reads half a number.
    new = f"{CLOCK_FILE}.new"
    device.shell(f"mkdir -p {CLOCK_DIR} && echo {offset_text(seconds)} > {new} && mv {new} {CLOCK_FILE}")
    return float(seconds)


def clock_jump(device: FaultTarget, seconds: float) -> float:
    """Move the wall clock of the runtime and of the stack's containers by ``seconds`` (negative:
    backwards); returns the new offset."""
    return set_clock_offset(device, clock_offset(device) + seconds)
