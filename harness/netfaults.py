"""Network faults of a stack's services, by service name: partitions, isolation, DNS failure, netem.

Everything is injected natively by the device's engine (its container runs amd64 code, not
under emulation): ``nsenter -t <pid> -n iptables ...`` enters a service container's network
namespace, with the pid the device engine reports for it. Rules live in one chain of ours,
``ARMSTACK-FAULT``, jumped to first from ``INPUT`` and ``OUTPUT``; healing flushes and removes
it. ::

    partition(a, b)     a drops every packet from/to b's addresses and b from/to a's
    isolate(s)          s drops everything but loopback: other services and the outside
    dns_failure()       every service rejects packets to Docker's embedded resolver
                        127.0.0.11 (matched by address: Docker DNATs port 53 to a random port)
    latency/loss/bandwidth   tc netem/tbf on the service's interfaces, where the kernel has
                        ``sch_netem`` (:func:`netem_support` says why not)

A container that starts again has a new network namespace, without the rules. The faults are
kept as desired state and :class:`NetworkFaults` re-applies the whole set whenever a stack
container starts: it subscribes to the engine's ``start`` events *before* it brings every
running container up to date, so a start is either seen as an event or already running when
the rules are applied (no start is missed, whatever the timing). What remains is the short
time between a restarted process's first instruction and the rules (one engine exec, ~0.1 s):
a partition covers it from the peer's side (the peer's rules still drop the restarted
service's address when it keeps it, which the engine's IPAM normally gives it again).

The pure parts (rule sets, scripts, tc commands) are plain functions of plain data.
"""

from __future__ import annotations

import contextlib
import shlex
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from harness.errors import FaultError

if TYPE_CHECKING:
    from harness.protocol import ExecResult

CHAIN = "ARMSTACK-FAULT"
EMBEDDED_DNS = "127.0.0.11"
STACK_LABEL = "io.armstack.stack"
SERVICE_LABEL = "io.armstack.service"


# -- desired state (pure) ----------------------------------------------------------------------

@dataclass(frozen=True)
class Netem:
    """Traffic shaping of one service's interfaces: delay (± jitter), loss, a rate cap."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_percent: float = 0.0
    rate_kbit: int = 0

    def __post_init__(self) -> None:
        for name, value in (("delay_ms", self.delay_ms), ("jitter_ms", self.jitter_ms),
                            ("rate_kbit", self.rate_kbit)):
            if value < 0:
                raise FaultError(f"netem {name} must be >= 0, not {value}")
        if not 0 <= self.loss_percent <= 100:
            raise FaultError(f"loss must be a percentage between 0 and 100, not {self.loss_percent}")
        if self.jitter_ms and not self.delay_ms:
            raise FaultError("jitter needs a delay to vary around (latency(service, ms, jitter))")

    @property
    def empty(self) -> bool:
        return not (self.delay_ms or self.loss_percent or self.rate_kbit)


@dataclass(frozen=True)
class FaultSet:
    """Every network fault in force on a device: what :class:`NetworkFaults` keeps applied."""

    partitions: frozenset[frozenset[str]] = frozenset()   # pairs of services that cannot talk
    isolated: frozenset[str] = frozenset()
    dns_down: bool = False
    shaped: tuple[tuple[str, Netem], ...] = ()            # (service, netem), one per service

    @property
    def empty(self) -> bool:
        return not (self.partitions or self.isolated or self.dns_down or self.shaped)

    def netem_of(self, service: str) -> Netem | None:
        return dict(self.shaped).get(service)

    def with_netem(self, service: str, netem: Netem) -> FaultSet:
        rest = tuple((s, n) for s, n in self.shaped if s != service)
        shaped = rest if netem.empty else (*rest, (service, netem))
        return FaultSet(self.partitions, self.isolated, self.dns_down, tuple(sorted(shaped, key=lambda p: p[0])))


def filter_rules(service: str, faults: FaultSet, addresses: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The rules (``iptables -A CHAIN`` arguments) for one service's namespace.

    ``addresses`` maps each running service to its container's IPv4 addresses. A peer with no
    running container has no address to drop; its rules come when it starts (re-application).
    """
    rules: list[list[str]] = []
    if service in faults.isolated:
        rules += [["-i", "lo", "-j", "RETURN"], ["-o", "lo", "-j", "RETURN"], ["-j", "DROP"]]
    for pair in sorted(faults.partitions, key=sorted):
        if service not in pair:
            continue
        (peer,) = pair - {service}
        for ip in sorted(addresses.get(peer, ())):
            rules += [["-s", ip, "-j", "DROP"], ["-d", ip, "-j", "DROP"]]
    if faults.dns_down:
        # Address only: the engine DNATs 127.0.0.11:53 to a port of its choosing (nat OUTPUT runs
        # before filter OUTPUT). REJECT, so a lookup fails at once, as with a resolver that is down.
        rules.append(["-d", EMBEDDED_DNS, "-j", "REJECT"])
    return rules


def affected(faults: FaultSet, services: Iterable[str]) -> set[str]:
    """The services whose namespaces carry rules or shaping under ``faults``."""
    names = set(services)
    hit = set(faults.isolated) | {s for pair in faults.partitions for s in pair} | {s for s, _ in faults.shaped}
    return names if faults.dns_down else names & hit


def filter_script(rules: list[list[str]]) -> str:
    """Shell that makes ``CHAIN`` hold exactly ``rules`` (idempotent); no rules: the chain is removed."""
    ipt = "iptables -w"
    if not rules:
        undo = [f"{ipt} -D INPUT -j {CHAIN}", f"{ipt} -D OUTPUT -j {CHAIN}", f"{ipt} -F {CHAIN}", f"{ipt} -X {CHAIN}"]
        return "; ".join(f"{c} 2>/dev/null" for c in undo) + "; true"
    steps = [f"({ipt} -N {CHAIN} 2>/dev/null || {ipt} -F {CHAIN})",
             *(f"{ipt} -A {CHAIN} {shlex.join(r)}" for r in rules),
             # Jumps last, so the chain is complete before traffic reaches it; first in line.
             *(f"({ipt} -C {c} -j {CHAIN} 2>/dev/null || {ipt} -I {c} 1 -j {CHAIN})" for c in ("INPUT", "OUTPUT"))]
    return " && ".join(steps)


def tc_commands(interface: str, netem: Netem | None) -> list[list[str]]:
    """``tc`` argument lists that set (or, with None/empty, remove) a service interface's shaping.

    Delay, jitter and loss are one ``netem`` qdisc (it also takes ``rate``), so a single root
    qdisc carries the whole spec and replacing it is atomic.
    """
    clear = ["tc", "qdisc", "del", "dev", interface, "root"]
    if netem is None or netem.empty:
        return [clear]
    spec = ["tc", "qdisc", "replace", "dev", interface, "root", "netem"]
    if netem.delay_ms:
        spec += ["delay", f"{netem.delay_ms:g}ms"]
        if netem.jitter_ms:
            spec += [f"{netem.jitter_ms:g}ms", "distribution", "normal"]
    if netem.loss_percent:
        spec += ["loss", f"{netem.loss_percent:g}%"]
    if netem.rate_kbit:
        spec += ["rate", f"{netem.rate_kbit}kbit"]
    return [spec]


NETEM_PROBE = ("unshare -n sh -c 'tc qdisc add dev lo root netem delay 1ms' 2>&1")


def netem_reason(has_tc: bool, probe_exit: int, probe_output: str) -> str | None:
    """Why netem cannot be used (None: it can), from what the probe in a throwaway netns said."""
    if not has_tc:
        return "the device engine has no `tc` (iproute2) to set up netem"
    if probe_exit == 0:
        return None
    said = probe_output.strip().splitlines()[-1] if probe_output.strip() else f"exit {probe_exit}"
    if "unknown" in said.lower() or "no such file" in said.lower():
        return f"this kernel has no sch_netem (tc says: {said})"
    return f"tc netem does not work here: {said}"


# -- applying it (I/O) -------------------------------------------------------------------------

@dataclass
class _Target:
    service: str
    container_id: str
    pid: int
    addresses: tuple[str, ...]
    interfaces: tuple[str, ...] = ("eth0",)


@dataclass
class Applied:
    """What was last applied, per container id: the rule set, so a test can wait for it."""

    rules: dict[str, list[list[str]]] = field(default_factory=dict)   # "<container id>/<pid>" -> rules
    rounds: int = 0


_netem_cache: dict[str, str | None] = {}


def netem_support(shell: Callable[..., ExecResult], kernel: str) -> str | None:
    """None if the device's kernel shapes traffic with netem, else why not; probed once per kernel
    (every device on a host shares its kernel) in a throwaway network namespace."""
    if kernel not in _netem_cache:
        has_tc = shell("command -v tc >/dev/null", check=False).exit_code == 0
        res = shell(NETEM_PROBE, check=False) if has_tc else None
        _netem_cache[kernel] = netem_reason(has_tc, res.exit_code if res else 1, res.output if res else "")
    return _netem_cache[kernel]


class NetworkFaults:
    """The network faults of one device, kept applied across restarts of its containers.

    ``device`` is a :class:`harness.protocol.FaultTarget` whose ``shell`` runs natively next to
    the engine with its pid namespace (the emulated device's engine container).
    """

    def __init__(self, device: Any, *, native: bool = True) -> None:
        self.device = device
        self.native = native           # iptables/tc in the namespaces; else only the disconnect fallback
        self.detached: dict[str, Detached] = {}
        self.faults = FaultSet()
        self.applied = Applied()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self.errors: list[str] = []

    # -- what tests call --
    def partition(self, a: str, b: str) -> None:
        """``a`` and ``b`` can no longer exchange a packet; each goes on talking to everything else."""
        if a == b:
            raise FaultError(f"a partition needs two services, got {a!r} twice")
        self._running(a, b)
        self.change(lambda f: FaultSet(f.partitions | {frozenset((a, b))}, f.isolated, f.dns_down, f.shaped))

    def isolate(self, service: str) -> None:
        """``service`` reaches nothing and nothing reaches it (other services, the outside); it
        keeps its loopback. Without namespace access: ``docker network disconnect`` instead."""
        self._running(service)
        if not self.native:
            c = self.device.container(service)
            self.detached.setdefault(service, disconnect(self.device.engine, c))
            return
        self.change(lambda f: FaultSet(f.partitions, f.isolated | {service}, f.dns_down, f.shaped))

    def dns_failure(self) -> None:
        """Every service's name lookups fail (the engine's embedded resolver is unreachable)."""
        self._require_native("dns_failure()")
        self.change(lambda f: FaultSet(f.partitions, f.isolated, True, f.shaped))

    def shape(self, service: str, **changes: float) -> None:
        """Set part of a service's netem spec (``delay_ms``, ``jitter_ms``, ``loss_percent``,
        ``rate_kbit``); a FaultError saying why where the kernel has no netem."""
        self._require_native("traffic shaping")
        self._running(service)
        reason = self.netem_support()
        if reason is not None:
            raise FaultError(f"cannot shape traffic on {self.device.name}: {reason}")
        now = self.faults.netem_of(service) or Netem()
        fields = {"delay_ms": now.delay_ms, "jitter_ms": now.jitter_ms, "loss_percent": now.loss_percent,
                  "rate_kbit": now.rate_kbit, **changes}
        netem = Netem(float(fields["delay_ms"]), float(fields["jitter_ms"]), float(fields["loss_percent"]),
                      int(fields["rate_kbit"]))
        self.change(lambda f: f.with_netem(service, netem))

    def netem_support(self) -> str | None:
        """None where netem works on this device's kernel, else the reason (probed once per kernel)."""
        if not self.native:
            return "the device gives no access to its services' network namespaces"
        kernel = self.device.shell("uname -r", check=False).output.strip()
        return netem_support(self.device.shell, kernel)

    def _require_native(self, what: str) -> None:
        if not self.native:
            raise FaultError(f"{what} needs the device engine's network namespaces (an emulated device); "
                             f"{self.device.name} gives no access to them")

    def _running(self, *services: str) -> None:
        for s in services:
            self.device.container(s)   # FaultError naming the service when it has no running container

    def change(self, update: Callable[[FaultSet], FaultSet]) -> None:
        with self._lock:
            before = self.faults
            self.faults = update(self.faults)
            self.apply_all(previous=before)
        if not self.faults.empty:
            self._watch()

    def heal(self) -> None:
        """Every network fault lifted: rules and shaping removed, detached services reattached."""
        for service, detached in list(self.detached.items()):
            reconnect(self.device.engine, detached)
            del self.detached[service]
        if self.native:
            self.change(lambda _: FaultSet())
        self.close()

    def close(self) -> None:
        self._stop.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._thread = None

    # -- applying --
    def _targets(self) -> dict[str, _Target]:
        project = getattr(self.device, "project", None)
        filters: dict[str, Any] = {"label": [SERVICE_LABEL] + ([f"{STACK_LABEL}={project}"] if project else [])}
        out: dict[str, _Target] = {}
        for c in self.device.engine.containers.list(filters=filters):
            pid = int(c.attrs["State"].get("Pid") or 0)
            if not pid:
                continue
            nets = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
            ips = tuple(sorted(n["IPAddress"] for n in nets.values() if n.get("IPAddress")))
            out[c.labels[SERVICE_LABEL]] = _Target(c.labels[SERVICE_LABEL], c.id, pid, ips)
        return out

    def apply_all(self, previous: FaultSet | None = None) -> None:
        """Bring every running container of the stack to the current fault set."""
        with self._lock:
            targets = self._targets()
            addresses = {s: t.addresses for s, t in targets.items()}
            touched = affected(self.faults, targets) | affected(previous or FaultSet(), targets)
            for service in sorted(touched):
                t = targets[service]
                rules = filter_rules(service, self.faults, addresses)
                # Keyed by the process too: a restarted container keeps its id, not its namespace.
                key = f"{t.container_id}/{t.pid}"
                if self.applied.rules.get(key) != rules or previous is not None:
                    self._nsenter(t, filter_script(rules), f"the network rules of {service!r}")
                    self.applied.rules[key] = rules
                old = (previous or FaultSet()).netem_of(service)
                new = self.faults.netem_of(service)
                if new is not None or old is not None:
                    for iface in t.interfaces:
                        for argv in tc_commands(iface, new):
                            self._nsenter(t, shlex.join(argv) + (" 2>/dev/null || true" if new is None else ""),
                                          f"the traffic shaping of {service!r}")
            self.applied.rounds += 1

    def _nsenter(self, t: _Target, script: str, what: str) -> None:
        res = self.device.shell(f"nsenter -t {t.pid} -n sh -c {shlex.quote(script)}", check=False)
        if res.exit_code != 0:
            raise FaultError(f"setting {what} (container {t.container_id[:12]}) failed "
                             f"(exit {res.exit_code}): {res.output.strip()}")

    def rules_in(self, service: str) -> str:
        """``iptables -S CHAIN`` in the service's namespace now (empty: no chain), for tests and reports."""
        t = self._targets().get(service)
        if t is None:
            raise FaultError(f"service {service!r} has no running container")
        res = self.device.shell(f"nsenter -t {t.pid} -n iptables -w -S {CHAIN} 2>/dev/null", check=False)
        return res.output if res.exit_code == 0 else ""

    # -- re-application on start --
    def _watch(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"netfaults-{self.device.name}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        project = getattr(self.device, "project", None)
        filters: dict[str, Any] = {"type": "container", "event": "start",
                                   "label": [f"{STACK_LABEL}={project}"] if project else [SERVICE_LABEL]}
        while not self._stop.is_set():
            try:
                # Subscribe first, then catch up: a start is an event or already running.
                self._stream = self.device.engine.api.events(decode=True, filters=filters)
                self.apply_all()
                for _ in self._stream:
                    if self._stop.is_set():
                        return
                    self.apply_all()
            except Exception as e:   # the engine restarting (kill_engine, reboot): subscribe again
                if self._stop.is_set():
                    return
                self.errors = (self.errors + [str(e)])[-20:]
            self._stop.wait(0.5)   # engine down: try to subscribe again, twice a second


# -- the capability-free fallback: detach the service from its networks ------------------------

@dataclass(frozen=True)
class Detached:
    """A container taken off its networks by ``docker network disconnect``, and how to reattach it."""

    container_id: str
    networks: tuple[tuple[str, tuple[str, ...]], ...]   # (network, aliases)


def disconnect(engine: Any, container: Any) -> Detached:
    """Take a container off every network (no capability needed: an engine API call). The engine
    keeps it so across restarts of the container; :func:`reconnect` undoes it."""
    nets = (container.attrs.get("NetworkSettings") or {}).get("Networks") or {}
    saved = []
    for name, ep in nets.items():
        # The engine adds the container's short id to the aliases itself; keep the stack's own.
        aliases = tuple(a for a in (ep.get("Aliases") or ()) if not container.id.startswith(a))
        saved.append((name, aliases))
        engine.networks.get(name).disconnect(container.id)
    return Detached(container.id, tuple(saved))


def reconnect(engine: Any, detached: Detached) -> None:
    for name, aliases in detached.networks:
        engine.networks.get(name).connect(detached.container_id, aliases=list(aliases))
