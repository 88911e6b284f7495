"""Fault-injection scenarios: every example stack through every fault, on emulated devices.

Each scenario deploys a stack, writes a file with a known checksum to one of its named
volumes, injects one fault and then asserts that

(a) every service is running again (healthy where it has a healthcheck) within a bound
    scaled by the arch's emulation factor (the measured time goes to the recovery report);
(b) where one service was hit, every other one kept its container and its StartedAt;
(c) the prefixed log of the affected service goes on after the recovery;
(d) the file written before the fault is intact;
(e) the runtime's status says what happened (restart counts, last exit, OOM, crash loop,
    backoff, the supervisor's own restart).

A stack is one entry of ``SCENARIOS``; a fault is one entry of ``FAULTS``, named by ``FaultName``:
the checks match on that closed set and end in ``assert_never``, so mypy names a fault added to
it without its checks. ``quick`` runs the
minimal stack on arm64 through a few faults (``make test``); ``full`` runs the rest, and a
subset again on armv7.
"""

from __future__ import annotations

import contextlib
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, assert_never, get_args

import pytest

from harness.device import EmulatedDevice, ServiceState
from harness.waits import wait_for

STACKS = Path(__file__).resolve().parents[2] / "stacks"
SAMPLE = "armstack-scenario.bin"


@dataclass(frozen=True)
class Scenario:
    """What the suite needs to know about a stack to put it through the faults."""

    path: Path
    services: tuple[str, ...]
    probe: str                              # the service single-service faults hit
    data: tuple[str, str]                   # (service, directory on a named volume) for the checksum file
    chatty: str                             # a service that logs steadily, for faults that restart nothing
    unhealthy_cmd: str | None = None        # run in ``probe``: fails its healthcheck until it restarts
    oom_service: str | None = None          # a service with a mem_limit
    poke: tuple[int, str] | None = None     # (port, path) to GET so that the logging service prints a line
    slow: float = 1.0                       # multiplies every recovery bound (bigger images, more services)


SCENARIOS: dict[str, Scenario] = {
    "minimal": Scenario(STACKS / "minimal", ("server", "client"), probe="server", data=("server", "/data"),
                        chatty="client", unhealthy_cmd="touch /tmp/unhealthy", oom_service="server"),
    "sensor-hub": Scenario(STACKS / "sensor-hub", ("broker", "publisher", "subscriber", "dashboard"),
                           probe="subscriber", data=("subscriber", "/data"), chatty="publisher",
                           unhealthy_cmd="touch /tmp/unhealthy", oom_service="subscriber", slow=1.5),
    "torrent-box": Scenario(STACKS / "torrent-box", ("transmission", "files"), probe="files",
                            data=("transmission", "/downloads"), chatty="files", poke=(80, "/"),
                            unhealthy_cmd="touch /tmp/unhealthy", oom_service="files", slow=1.5),
}


# -- the faults ------------------------------------------------------------------------------------

@dataclass
class Run:
    """One scenario in progress: what was observed before the fault."""

    device: EmulatedDevice
    scenario: Scenario
    started: dict[str, tuple[str, str]]       # service -> (container id, StartedAt)
    states: dict[str, ServiceState]
    supervisor: dict[str, Any]
    notes: dict[str, Any] = field(default_factory=dict)


def _sigkill(run: Run) -> None:
    run.device.crash(run.scenario.probe, "SIGKILL")


def _oom(run: Run) -> None:
    if run.scenario.oom_service is None:
        pytest.skip(f"{run.scenario.path.name} has no service with a mem_limit")
    run.device.oom(run.scenario.oom_service)


def _crash_loop(run: Run) -> None:
    d, svc = run.device, run.scenario.probe
    d.crash_loop(svc, times=5)
    # Five crashes in one streak: crash looping, the next start held back (8 s at the default policy).
    run.notes["looping"] = wait_for(
        lambda: (s := d.services()[svc]).crash_looping and s.backoff_until and s.backoff_until > time.time() and s,
        d.timeout(10), f"{svc} to be reported crash looping with a backoff")


def _unhealthy(run: Run) -> None:
    if run.scenario.unhealthy_cmd is None:
        pytest.skip(f"{run.scenario.path.name} has no switch that fails a healthcheck")
    run.device.make_unhealthy(run.scenario.probe, run.scenario.unhealthy_cmd)


def _disk_95(run: Run) -> None:
    usage = run.device.fill_disk(95)
    assert usage.percent >= 94, usage
    run.device.crash(run.scenario.probe, "SIGKILL")   # a restart has to happen on the full card


def _partition(run: Run) -> None:
    """The probe cut from every other service until the rules are in place, then healed."""
    d, probe = run.device, run.scenario.probe
    for other in run.scenario.services:
        if other != probe:
            d.partition(probe, other)
    d.wait_for(lambda: "DROP" in d.network_faults().rules_in(probe) or None, 10, f"the partition of {probe}")
    d.heal_network()


def _pause(run: Run) -> None:
    """The probe frozen until the runtime reports it paused, then thawed."""
    d, probe = run.device, run.scenario.probe
    d.pause(probe)
    d.wait_for(lambda: d.services()[probe].status == "paused", 20, f"the status to show {probe} paused",
               describe=lambda: str(d.services().get(probe)))
    d.resume(probe)


FaultName = Literal["sigkill", "oom", "crash_loop", "unhealthy", "engine_killed", "runtime_killed", "reboot",
                    "power_cut", "disk_95", "partition", "pause"]
Restarts = Literal["none", "all", "probe"]   # what the engine restarts: nothing, the whole stack, the probe


@dataclass(frozen=True)
class Fault:
    inject: Callable[[Run], None]
    single: bool          # one service hit (the others must not be touched)
    bound: float          # seconds to recover, before the emulation factor
    restarts: Restarts = "none"
    after_injection: bool = False  # measure from the end of the injection (the last crash of a loop)


FAULTS: dict[FaultName, Fault] = {
    "sigkill": Fault(_sigkill, single=True, bound=20, restarts="probe"),
    "oom": Fault(_oom, single=True, bound=30, restarts="probe"),
    "crash_loop": Fault(_crash_loop, single=True, bound=40, restarts="probe", after_injection=True),
    "unhealthy": Fault(_unhealthy, single=True, bound=45, restarts="probe"),
    "engine_killed": Fault(lambda r: r.device.kill_engine(), single=False, bound=60, restarts="all"),
    "runtime_killed": Fault(lambda r: r.device.kill_runtime(), single=False, bound=20, restarts="none"),
    "reboot": Fault(lambda r: r.device.reboot(), single=False, bound=90, restarts="all"),
    "power_cut": Fault(lambda r: r.device.power_cut(), single=False, bound=90, restarts="all"),
    "disk_95": Fault(_disk_95, single=True, bound=20, restarts="probe"),
    # Seen by neither the engine nor the runtime as a failure: nothing restarts, all runs on.
    "partition": Fault(_partition, single=True, bound=20, restarts="none", after_injection=True),
    "pause": Fault(_pause, single=True, bound=30, restarts="none", after_injection=True),
}
# Faults whose effect on a stack depends on how its services handle a lost peer: run on the
# minimal stack, whose behaviour is known (its client logs and retries).
MINIMAL_ONLY: set[FaultName] = {"partition", "pause"}

assert set(FAULTS) == set(get_args(FaultName)), "every fault has its entry, every entry its name"

QUICK: set[tuple[str, FaultName]] = {("minimal", "sigkill"), ("minimal", "oom"), ("minimal", "power_cut")}
ARMV7: list[tuple[str, FaultName]] = [
    ("minimal", "sigkill"), ("minimal", "oom"), ("minimal", "power_cut"), ("minimal", "engine_killed"),
    ("torrent-box", "sigkill"), ("sensor-hub", "unhealthy")]


def _cases(pairs: list[tuple[str, FaultName]], *, quick: set[tuple[str, FaultName]]) -> list[Any]:
    return [pytest.param(stack, fault, id=f"{stack}-{fault}",
                         marks=pytest.mark.quick if (stack, fault) in quick else pytest.mark.full)
            for stack, fault in pairs]


# -- observing -------------------------------------------------------------------------------------

def _started(device: EmulatedDevice) -> dict[str, tuple[str, str]]:
    """service -> (container id, StartedAt) of the stack's running containers."""
    out = {}
    for c in device.engine.containers.list(filters={"label": f"io.armstack.stack={device.project}"}):
        out[c.labels["io.armstack.service"]] = (c.id, c.attrs["State"]["StartedAt"])
    return out


def _ready(c: Any) -> bool:
    return bool(c.status == "running" and c.attrs["State"].get("Health", {}).get("Status") in (None, "healthy"))


def _checksum(run: Run) -> str:
    service, folder = run.scenario.data
    res = run.device.exec(service, f"sha256sum {folder}/{SAMPLE}")
    assert res.exit_code == 0, res.output
    return res.output.split()[0]


def _poke(run: Run) -> None:
    if run.scenario.poke:
        port, path = run.scenario.poke
        # The log line is what counts; a refused request is tried again at the next poll.
        with contextlib.suppress(OSError):
            urllib.request.urlopen(run.device.url(port, path), timeout=5).read()


def _describe(device: EmulatedDevice) -> Callable[[], str]:
    def text() -> str:
        rows = [f"  {c.name}: {c.status} health={c.attrs['State'].get('Health', {}).get('Status')} "
                f"started={c.attrs['State']['StartedAt']}" for c in device.engine.containers.list(all=True)]
        return "engine:\n" + "\n".join(rows) + f"\nstatus: {device.services()}\nlast log lines:\n" + \
            "\n".join(device.logs()[-20:])
    return text


# -- the scenario ----------------------------------------------------------------------------------

def _restarted(fault: Fault, sc: Scenario, hit: set[str]) -> set[str]:
    """The services whose containers the fault restarts (they get a new StartedAt)."""
    match fault.restarts:
        case "none":
            return set()
        case "all":
            return set(sc.services)
        case "probe":
            return hit
        case _:
            assert_never(fault.restarts)


def _scenario(device: EmulatedDevice, stack: str, fault_name: FaultName,
              record: Callable[[dict[str, Any]], None]) -> None:
    sc, fault = SCENARIOS[stack], FAULTS[fault_name]
    if not any((sc.path / n).exists() for n in ("compose.yaml", "docker-compose.yml")):
        pytest.skip(f"stack {stack} has no compose file yet")
    device.deploy(sc.path)
    for s in sc.services:
        device.wait_until_running(s, timeout=120 * sc.slow)

    # Data with a known checksum on the stack's volume, flushed to the card as an app would.
    service, folder = sc.data
    res = device.exec(service, f"head -c 262144 /dev/urandom > {folder}/{SAMPLE} && sync && "
                               f"sha256sum {folder}/{SAMPLE}")
    assert res.exit_code == 0, res.output
    written = res.output.split()[0]

    run = Run(device, sc, _started(device), device.services(), dict((device.status() or {})["supervisor"]))
    hit = {sc.probe if fault_name != "oom" else (sc.oom_service or sc.probe)} if fault.single else set(sc.services)
    restarted = _restarted(fault, sc, hit)
    log_service = next(iter(hit)) if fault.single else sc.chatty

    t0 = time.monotonic()
    try:
        fault.inject(run)
        if fault.after_injection:
            t0 = time.monotonic()

        # (a) back within the bound: what the fault restarted has a new start, everything runs.
        def recovered() -> bool:
            now = {s: device.find_container(s) for s in sc.services}
            if not all(c is not None and _ready(c) for c in now.values()):
                return False
            if fault_name == "runtime_killed":
                sup = (device.status() or {}).get("supervisor") or {}
                return bool(sup.get("ready")) and sup.get("started_at") != run.supervisor["started_at"]
            return all((now[s].id, now[s].attrs["State"]["StartedAt"]) != run.started[s]  # type: ignore[union-attr]
                       for s in restarted)

        bound = device.timeout(fault.bound * sc.slow)
        wait_for(recovered, bound, f"{stack} to recover from {fault_name}", describe=_describe(device), interval=0.25)
        seconds = time.monotonic() - t0
        record({"stack": stack, "fault": fault_name, "arch": device.arch.name, "seconds": round(seconds, 2),
                "bound": bound})

        # (b) only what was hit restarted.
        after = _started(device)
        untouched = [s for s in sc.services if s not in restarted]
        assert {s: after[s] for s in untouched} == {s: run.started[s] for s in untouched}, \
            f"{untouched} must keep their containers and start times"

        # (c) the prefixed log goes on after the recovery.
        at_recovery = len(device.logs(log_service))

        def logged() -> bool:
            _poke(run)
            return len(device.logs(log_service)) > at_recovery

        # Quiet services print every 30 s or so (the publisher's rounds, 100 stored readings).
        wait_for(logged, device.timeout(20) * sc.slow, f"a new log line of {log_service} after the recovery",
                 describe=lambda: "\n".join(device.logs()[-20:]), interval=0.5)

        # (d) the data is intact.
        assert _checksum(run) == written

        # (e) the status says what happened.
        _check_status(run, fault_name, hit)
    finally:
        if fault_name == "disk_95":
            device.free_disk()


def _check_status(run: Run, fault_name: FaultName, hit: set[str]) -> None:
    d, sc = run.device, run.scenario

    def settled() -> dict[str, ServiceState] | None:
        now = d.services()
        return now if all(now[s].status == "running" for s in sc.services) else None

    states = wait_for(settled, d.timeout(10), "the status to show every service running",
                      describe=lambda: str(d.services()))
    match fault_name:
        case "sigkill" | "oom" | "unhealthy" | "crash_loop" | "disk_95":
            _check_one_hit(run, fault_name, hit, states)
        case "partition" | "pause":
            # Nothing the runtime counts: no restart anywhere.
            assert {s: states[s].restarts for s in sc.services} == {s: run.states[s].restarts for s in sc.services}
        case "engine_killed" | "runtime_killed" | "reboot" | "power_cut":
            _check_whole_stack(run, fault_name, states)
        case _:
            assert_never(fault_name)


SingleFault = Literal["sigkill", "oom", "unhealthy", "crash_loop", "disk_95"]
StackFault = Literal["engine_killed", "runtime_killed", "reboot", "power_cut"]


def _n(st: ServiceState) -> int:
    """Restarts counted by the supervisor (None only when no supervisor runs the stack)."""
    assert st.restarts is not None, st
    return st.restarts


def _check_one_hit(run: Run, fault_name: SingleFault, hit: set[str], states: dict[str, ServiceState]) -> None:
    """One service was hit: it restarted once (five times for a loop), the others not at all."""
    d, sc, before = run.device, run.scenario, run.states
    (svc,) = hit
    st, was = states[svc], before[svc]
    for other in set(sc.services) - hit:
        assert states[other].restarts == before[other].restarts, (other, states[other])
    if fault_name == "crash_loop":
        assert _n(st) >= _n(was) + 5, st
        assert st.last_exit == 137, st
        looping = run.notes["looping"]
        assert looping.crash_looping and looping.backoff_until is not None, looping
        return
    assert _n(st) == _n(was) + 1, (was, st)
    match fault_name:
        case "oom":
            assert (st.oom_killed, st.last_exit) == (True, 137), st
        case "unhealthy":
            assert st.health == "healthy", st
        case "sigkill":
            assert (st.oom_killed, st.last_exit) == (False, 137), st
        case "disk_95":
            assert (st.oom_killed, st.last_exit) == (False, 137), st
            # The card stays full (nothing the runtime owns fills it), and the status says so.
            wait_for(lambda: ((d.status() or {}).get("disk") or {}).get("percent", 0) >= 90, d.timeout(10),
                     "the status to report the full card", describe=lambda: str((d.status() or {}).get("disk")))
        case _:
            assert_never(fault_name)


def _check_whole_stack(run: Run, fault_name: StackFault, states: dict[str, ServiceState]) -> None:
    """The engine, the runtime or the device went down: everything is back, nothing in backoff."""
    d, sc, before = run.device, run.scenario, run.states
    supervisor = (d.status() or {})["supervisor"]
    match fault_name:
        case "engine_killed":
            # The runtime itself kept running; every service came back, none is left in backoff.
            assert supervisor["started_at"] == run.supervisor["started_at"], supervisor
        case "runtime_killed" | "reboot" | "power_cut":
            assert supervisor["started_at"] != run.supervisor["started_at"], supervisor
        case _:
            assert_never(fault_name)
    for s in sc.services:
        assert _n(states[s]) >= _n(before[s]), (s, before[s], states[s])
        assert not states[s].crash_looping and states[s].backoff_until is None, states[s]
    if fault_name == "runtime_killed":
        assert {s: states[s].restarts for s in sc.services} == {s: before[s].restarts for s in sc.services}


# -- the tests -------------------------------------------------------------------------------------

ARM64_CASES: list[tuple[str, FaultName]] = [(stack, fault) for stack in SCENARIOS for fault in FAULTS
                                            if fault not in MINIMAL_ONLY or stack == "minimal"]


@pytest.mark.device(arch="arm64")
@pytest.mark.parametrize(("stack", "fault"), _cases(ARM64_CASES, quick=QUICK))
def test_scenario(arm_device: EmulatedDevice, stack: str, fault: FaultName,
                  record_recovery: Callable[[dict[str, Any]], None]) -> None:
    _scenario(arm_device, stack, fault, record_recovery)


@pytest.mark.device(arch="armv7")
@pytest.mark.parametrize(("stack", "fault"), _cases(ARMV7, quick=set()))
def test_scenario_armv7(arm_device: EmulatedDevice, stack: str, fault: FaultName,
                        record_recovery: Callable[[dict[str, Any]], None]) -> None:
    _scenario(arm_device, stack, fault, record_recovery)
