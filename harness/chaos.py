"""The chaos soak: a seeded schedule of faults against a stack that keeps writing acknowledged records.

::

    with EmulatedDevice("arm64") as device:
        result = soak(device, "stacks/ledger", seed=7, faults=20)
        result.write(Path("reports/chaos"))     # events.json, junit.xml, timeline.png
        result.assert_ok()

While the schedule (:mod:`harness.chaosplan`) runs, a client on the host appends records to the
stack's ledger (``stacks/ledger``) and counts a record as stored only on the ledger's answer,
which comes after its fsync. After every fault the soak heals it, waits for the stack to
converge (every service running, healthy where it has a healthcheck, and the ledger taking
writes again) within the fault's bound scaled by the arch, and checks that only the services
the fault hit were restarted. At the end the ledger's file is read back and held to the history
(:mod:`harness.ledger`). ``armstack chaos`` runs the same from the command line.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Self, assert_never, get_args

import docker.errors

from harness.chaosplan import ChaosStep, FaultKind, StackTraits, plan, usable
from harness.errors import DeviceError, FaultError, HarnessError
from harness.ledger import LedgerFile, Verdict, check, payload_for
from harness.protocol import (
    CLOCK,
    DISK_FILL,
    ENGINE_KILL,
    NET_FAULTS,
    POWER,
    PROCESS_FAULTS,
    RUNTIME_KILL,
    Device,
)
from harness.waits import WaitTimeout, wait_for

LEDGER_PORT = 8000
LEDGER_SERVICE = "ledger"

FaultName = Literal["sigkill", "oom", "crash_loop", "kill_engine", "kill_runtime", "reboot",
                    "power_cut", "disk_full", "partition", "isolate", "dns_failure", "pause", "starve_cpu",
                    "clock_jump"]

# The catalogue: bounds as in the fault scenarios (tests/e2e/test_scenarios.py), before the arch factor.
# No SIGTERM: a service's main process is pid 1 of its container, and pid 1 ignores a signal it has
# no handler for, so whether SIGTERM is a fault at all depends on the service.
CATALOGUE: tuple[FaultKind, ...] = (
    FaultKind("sigkill", "service", "target", bound=20, weight=4, capability=PROCESS_FAULTS),
    FaultKind("oom", "service", "target", bound=30, weight=1, capability=PROCESS_FAULTS, needs="mem_limit"),
    FaultKind("crash_loop", "service", "target", bound=40, weight=1, capability=PROCESS_FAULTS),
    FaultKind("kill_engine", "device", "all", bound=60, weight=1, capability=ENGINE_KILL),
    FaultKind("kill_runtime", "device", "none", bound=20, weight=2, capability=RUNTIME_KILL),
    FaultKind("reboot", "device", "all", bound=90, weight=1, capability=POWER),
    FaultKind("power_cut", "device", "all", bound=90, weight=2, capability=POWER),
    FaultKind("disk_full", "device", "none", bound=20, weight=1, capability=DISK_FILL, hold=(2.0, 6.0)),
    FaultKind("partition", "pair", "none", bound=20, weight=2, capability=NET_FAULTS, hold=(2.0, 8.0)),
    FaultKind("isolate", "service", "none", bound=20, weight=1, capability=NET_FAULTS, hold=(2.0, 8.0)),
    FaultKind("dns_failure", "device", "none", bound=20, weight=1, capability=NET_FAULTS, hold=(2.0, 8.0)),
    FaultKind("pause", "service", "maybe", bound=40, weight=1, capability=PROCESS_FAULTS, hold=(2.0, 6.0)),
    FaultKind("starve_cpu", "service", "maybe", bound=40, weight=1, capability=PROCESS_FAULTS, hold=(3.0, 8.0)),
    FaultKind("clock_jump", "device", "none", bound=20, weight=1, capability=CLOCK, hold=(3.0, 8.0),
              values=(-86_400.0, 86_400.0)),
)
assert {k.name for k in CATALOGUE} == set(get_args(FaultName)), "every fault has its entry, every entry its name"


def inject(device: Device, step: ChaosStep) -> Callable[[], None] | None:
    """Put ``step``'s fault on the device; returns how to heal it, if it stays until healed."""
    name: FaultName = step.fault  # type: ignore[assignment]   # drawn from CATALOGUE, checked above
    match name:
        case "sigkill":
            device.crash(step.target[0], "SIGKILL")
        case "oom":
            device.oom(step.target[0])
        case "crash_loop":
            device.crash_loop(step.target[0], times=5)
        case "kill_engine":
            device.kill_engine()
        case "kill_runtime":
            device.kill_runtime()
        case "reboot":
            device.reboot()
        case "power_cut":
            device.power_cut()
        case "disk_full":
            device.fill_disk(95)
            return lambda: _free(device)
        case "partition":
            device.partition(*step.target)
            return device.heal_network
        case "isolate":
            device.isolate(step.target[0])
            return device.heal_network
        case "dns_failure":
            device.dns_failure()
            return device.heal_network
        case "pause":
            device.pause(step.target[0])
            return lambda: _resume(device, step.target[0])
        case "starve_cpu":
            device.starve_cpu(step.target[0])
            return lambda: device.heal_cpu(step.target[0])
        case "clock_jump":
            device.clock_jump(step.value)
            return device.heal_clock
        case _:
            assert_never(name)
    return None


def _free(device: Device) -> None:
    device.free_disk()


def _resume(device: Device, service: str) -> None:
    device.resume(service)


# -- the workload's client ----------------------------------------------------------------------

@dataclass
class History:
    """What the client saw: acknowledged records, attempts without an answer, throughput samples."""

    acknowledged: list[int] = field(default_factory=list)
    unanswered: list[int] = field(default_factory=list)
    refused: int = 0                                          # answered, not stored (503, refused connection)
    samples: list[tuple[float, int]] = field(default_factory=list)   # (t, acknowledged so far)


class _Background:
    """A daemon thread running ``_run`` until :meth:`stop`; ``_stop`` is its wake-up event."""

    join_timeout = 30.0

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.join_timeout)

    def _run(self) -> None:
        raise NotImplementedError


class LedgerClient(_Background):
    """Appends records to the ledger from a thread until stopped; never counts an unanswered write."""

    def __init__(self, device: Device, seed: int, clock: Callable[[], float], timeout: float = 10.0):
        super().__init__("ledger-client")
        self.device, self.seed, self.clock, self.timeout = device, seed, clock, timeout
        self.join_timeout = timeout + 5
        self.history = History()
        self._acked = threading.Condition()

    def run_for(self, seconds: float) -> None:
        """Let the workload alone run for ``seconds`` (returns early only when the client stops)."""
        self._stop.wait(seconds)

    def acked(self) -> int:
        with self._acked:
            return len(self.history.acknowledged)

    def wait_for_ack_after(self, count: int, timeout: float) -> bool:
        """Wait until a record beyond the first ``count`` was acknowledged (the ledger takes writes)."""
        with self._acked:
            return self._acked.wait_for(lambda: len(self.history.acknowledged) > count, timeout)

    def _run(self) -> None:
        seq = 0
        while not self._stop.is_set():
            seq += 1
            outcome = self._append(seq)
            with self._acked:
                if outcome == "acked":
                    self.history.acknowledged.append(seq)
                    self.history.samples.append((self.clock(), len(self.history.acknowledged)))
                    self._acked.notify_all()
                elif outcome == "refused":
                    self.history.refused += 1
                else:
                    self.history.unanswered.append(seq)
            if outcome != "acked":
                self._stop.wait(0.5)   # the ledger is down: don't spin against it

    def _append(self, seq: int) -> Literal["acked", "refused", "unanswered"]:
        body = f"{seq} {payload_for(self.seed, seq)}".encode()
        try:
            url = self.device.url(LEDGER_PORT, "/append")
            with urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"),
                                        timeout=self.timeout) as r:
                return "acked" if r.status == 200 and r.read() == f"ok {seq}".encode() else "unanswered"
        except urllib.error.HTTPError:
            return "refused"              # the ledger answered: not stored
        except ConnectionRefusedError:
            return "refused"              # nothing listened: nothing was sent
        except urllib.error.URLError as e:
            return "refused" if isinstance(e.reason, ConnectionRefusedError) else "unanswered"
        except (OSError, DeviceError, FaultError):
            return "unanswered"           # sent, maybe stored: neither is an error


# -- one soak -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StepOutcome:
    step: ChaosStep
    injected_at: float
    healed_at: float
    converged_after: float | None          # seconds from heal to converged; None: did not converge
    bound: float
    restarted: tuple[str, ...]
    unexpected_restarts: tuple[str, ...]
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.converged_after is not None and not self.unexpected_restarts


@dataclass
class SoakResult:
    seed: int
    stack: str
    arch: str
    steps: list[StepOutcome]
    verdict: Verdict
    history: History
    states: list[tuple[float, dict[str, str]]]    # (t, service -> state) samples for the timeline
    duration: float

    @property
    def unconverged(self) -> list[StepOutcome]:
        return [s for s in self.steps if not s.ok]

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.unconverged

    def summary(self) -> str:
        times = [s.converged_after for s in self.steps if s.converged_after is not None]
        worst = f", slowest convergence {max(times):.1f}s" if times else ""
        return (f"chaos soak seed {self.seed} on {self.arch}: {len(self.steps)} faults, "
                f"{len(self.unconverged)} not converged{worst}; ledger: {self.verdict.summary()}")

    def assert_ok(self) -> None:
        if not self.ok:
            bad = "\n".join(f"  {s.step.describe()}: {s.error or _why(s)}" for s in self.unconverged)
            raise AssertionError(f"{self.summary()}\n{bad}")

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in self.steps:
            out.append({"t": s.injected_at, "event": "fault", **asdict(s.step)})
            out.append({"t": s.healed_at, "event": "healed", "index": s.step.index})
            out.append({"t": s.healed_at + (s.converged_after or s.bound), "index": s.step.index,
                        "event": "converged" if s.ok else "not-converged",
                        "seconds": s.converged_after, "bound": s.bound, "restarted": list(s.restarted),
                        "unexpected_restarts": list(s.unexpected_restarts), "error": s.error})
        return sorted(out, key=lambda e: e["t"])

    def write(self, directory: Path) -> dict[str, Path]:
        """The JSON event log, JUnit XML and (with matplotlib installed) the timeline PNG."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = {"events": directory / "events.json", "junit": directory / "junit.xml"}
        doc = {"seed": self.seed, "stack": self.stack, "arch": self.arch, "ok": self.ok, "summary": self.summary(),
               "duration": self.duration, "ledger": asdict(self.verdict), "events": self.events(),
               "states": [{"t": t, "services": s} for t, s in self.states],
               "acknowledged": self.history.samples}
        paths["events"].write_text(json.dumps(doc, indent=1) + "\n")
        paths["junit"].write_bytes(self.junit())
        from harness.timeline import render  # matplotlib is optional: no PNG without it
        png = render(self, directory / "timeline.png")
        if png is not None:
            paths["timeline"] = png
        return paths

    def junit(self) -> bytes:
        suite = ET.Element("testsuite", name=f"chaos-{self.arch}-seed{self.seed}", tests=str(len(self.steps) + 1),
                           failures=str(len(self.unconverged) + (0 if self.verdict.ok else 1)),
                           time=f"{self.duration:.1f}")
        for s in self.steps:
            case = ET.SubElement(suite, "testcase", classname="chaos", name=s.step.describe(),
                                 time=f"{s.converged_after or 0:.1f}")
            if not s.ok:
                ET.SubElement(case, "failure", message=s.error or _why(s))
        case = ET.SubElement(suite, "testcase", classname="chaos", name="acknowledged records intact")
        if not self.verdict.ok:
            ET.SubElement(case, "failure", message=self.verdict.summary())
        return ET.tostring(suite, encoding="utf-8", xml_declaration=True)


def _why(s: StepOutcome) -> str:
    if s.converged_after is None:
        return f"did not converge within {s.bound:.0f}s"
    return f"restarted {', '.join(s.unexpected_restarts)}, which the fault did not hit"


def stack_traits(device: Device, services: Sequence[str]) -> StackTraits:
    """Which running service has a memory limit or a healthcheck, read from its container."""
    traits: dict[str, frozenset[str]] = {}
    for svc in services:
        attrs = device.container(svc).attrs
        t = set()
        if attrs["HostConfig"].get("Memory"):
            t.add("mem_limit")
        if attrs["Config"].get("Healthcheck"):
            t.add("healthcheck")
        traits[svc] = frozenset(t)
    return StackTraits(tuple(services), traits)


def soak(device: Device, stack: str | Path, *, seed: int, faults: int, only: Sequence[str] = (),
         minutes: float | None = None, progress: Callable[[str], None] = lambda line: None) -> SoakResult:
    """Deploy ``stack`` (a ledger stack) on a started device and run ``faults`` faults drawn by ``seed``
    (with ``minutes``: as many as fit in that time, the schedule still drawn by ``seed``)."""
    began = time.monotonic()

    def clock() -> float:
        return round(time.monotonic() - began, 2)

    device.deploy(stack)
    services = sorted(device.services())
    if LEDGER_SERVICE not in services:
        raise HarnessError(f"the chaos soak needs a stack with a {LEDGER_SERVICE!r} service "
                           f"(stacks/ledger); {stack} has {', '.join(services)}")
    for svc in services:
        device.wait_until_running(svc, 120)
    if minutes is not None:
        faults = max(faults, int(minutes * 60))   # more than can fit: the clock ends the soak
    steps = plan(seed, faults, usable(CATALOGUE, device.capabilities, stack_traits(device, services), only),
                 stack_traits(device, services))
    client = LedgerClient(device, seed, clock).start()
    sampler = _StateSampler(device, clock).start()
    outcomes: list[StepOutcome] = []
    try:
        if not client.wait_for_ack_after(0, device.timeout(60)):
            raise HarnessError("the ledger took no write within a minute of the stack running")
        for step in steps:
            if minutes is not None and time.monotonic() - began > minutes * 60:
                break
            outcome = _run_step(device, step, client, clock)
            progress(f"{step.describe()}: " + ("ok" if outcome.ok else (outcome.error or _why(outcome)))
                     + (f" ({outcome.converged_after:.1f}s)" if outcome.converged_after is not None else ""))
            outcomes.append(outcome)
    finally:
        client.stop()
        sampler.stop()
    verdict = check(seed, client.history.acknowledged, client.history.unanswered, _read_ledger(device))
    return SoakResult(seed, str(stack), device.arch.name, outcomes, verdict, client.history, sampler.samples,
                      time.monotonic() - began)


def _run_step(device: Device, step: ChaosStep, client: LedgerClient, clock: Callable[[], float]) -> StepOutcome:
    kind = next(k for k in CATALOGUE if k.name == step.fault)
    bound = device.timeout(kind.bound)
    client.run_for(step.pause)   # plain workload between faults
    before = _containers(device)
    injected_at = clock()
    error = None
    try:
        heal = inject(device, step)
        if step.hold:
            client.run_for(step.hold)
        if heal is not None:
            heal()
    except (FaultError, DeviceError) as e:
        error = f"could not inject: {e}"
    healed_at = clock()
    acked = client.acked()
    # A fault that restarts something has converged only once it did: a crash is converged after
    # the restart, not in the instant before the engine saw the process die.
    must_restart = {"all": set(before), "target": set(step.target)}.get(kind.restarts, set())
    may_restart = must_restart | (set(step.target) if kind.restarts == "maybe" else set())
    converged = None if error else _converge(device, client, acked, bound, before, must_restart)
    after = _containers(device)
    restarted = tuple(sorted(s for s in after if before.get(s) != after[s]))
    unexpected = tuple(s for s in restarted if s not in may_restart)
    return StepOutcome(step, injected_at, healed_at, converged, bound, restarted, unexpected, error)


def _converge(device: Device, client: LedgerClient, acked: int, bound: float,
              before: dict[str, tuple[str, str]], must_restart: set[str]) -> float | None:
    """Seconds until every service runs (healthy where checked), those that must have restarted did,
    and the ledger took a new write."""
    start = time.monotonic()

    def converged() -> bool:
        now = _containers(device, running=True)
        if any(now.get(svc) in (None, before.get(svc)) for svc in must_restart):
            return False
        for svc in device.services():
            c = device.find_container(svc)
            if c is None or c.status != "running" or c.attrs["State"].get("Health", {}).get("Status") not in (
                    None, "healthy"):
                return False
        return True

    try:
        wait_for(converged, bound, "the stack to converge", interval=0.5)   # bound: already scaled
    except (WaitTimeout, HarnessError):
        return None
    if not client.wait_for_ack_after(acked, max(0.0, bound - (time.monotonic() - start))):
        return None
    return round(time.monotonic() - start, 2)


def _containers(device: Device, *, running: bool = False) -> dict[str, tuple[str, str]]:
    """service -> (container id, StartedAt), as the device engine has them now."""
    out = {}
    # Mid power cut the engine answers nothing: then nothing is known to run.
    with contextlib.suppress(DeviceError, FaultError, OSError, docker.errors.DockerException):
        for svc in device.services():
            c = device.find_container(svc, running=running)
            if c is not None:
                out[svc] = (c.id, c.attrs["State"].get("StartedAt", ""))
    return out


def _read_ledger(device: Device) -> LedgerFile:
    res = device.exec(LEDGER_SERVICE, "cat /data/ledger.log 2>/dev/null")
    return LedgerFile.parse(res.output.encode())


class _StateSampler(_Background):
    """The runtime's per-service state once a second, for the timeline."""

    def __init__(self, device: Device, clock: Callable[[], float]):
        super().__init__("state-sampler")
        self.device, self.clock = device, clock
        self.samples: list[tuple[float, dict[str, str]]] = []

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                states = {s: st.state for s, st in self.device.services().items()}
            except Exception:   # noqa: BLE001 — a device mid power cut answers nothing: that is a sample too
                states = {}
            self.samples.append((self.clock(), states))
