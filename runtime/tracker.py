"""Per-service supervision records, and what each exit means now: the supervisor's decisions, pure.

:class:`ServiceTracker` keeps, for every service, the crash streak (restart backoff), what the
planner must know of it (restarts in the streak, the backoff deadline, crash looping), the record
that survives a supervisor restart (restarts in all, the last exit) and which exits were already
counted. The supervisor feeds it observations and action results together with the time; the
tracker answers with :class:`ExitVerdict` values — the service, a named reason, whether and when
it starts again — and never touches the engine, the clock or the disk.

Reasons (:data:`Reason`):

    stopped      the runtime stopped the container itself (update, restart, down): not a crash
    completed    a one-shot job that finished (runtime/exits.py): done, not a crash
    before-us    it stopped before this supervisor ran (shutdown, or a crash nobody watched):
                 started again at once, without a crash streak
    crashed      a crash: restarted now or after the backoff delay
    crash-loop   a crash that made the streak reach the crash-loop threshold (still retried)
    left-down    a crash the service's restart policy does not restart

Times: ``now`` is the monotonic clock the backoff runs on; ``wall`` is epoch seconds, the
engine's clock for started/finished times.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, Protocol

from runtime import backoff as bo
from runtime.compose.model import StackSpec
from runtime.exits import describe_restart, exit_kind, wants_restart
from runtime.observed import ObservedContainer, ObservedState, ServiceRuntime
from runtime.state import ServiceRecord

Reason = Literal["stopped", "completed", "before-us", "crashed", "crash-loop", "left-down"]
CRASHES: frozenset[Reason] = frozenset({"crashed", "crash-loop", "left-down"})


class StopLedger(Protocol):
    """Which containers the runtime stopped on purpose (the executor keeps this ledger)."""

    def expected_stop(self, container_id: str) -> bool: ...


@dataclass(frozen=True)
class ExitVerdict:
    """What one newly seen exit means."""

    service: str
    container_id: str
    reason: Reason
    exit_code: int | None = None
    oom_killed: bool = False
    restart_at: float | None = None   # monotonic; None with a restart: at once
    policy: str = ""                  # the restart policy, as the status shows it

    @property
    def crash(self) -> bool:
        return self.reason in CRASHES

    def message(self, now: float) -> str | None:
        """The log sentence for a crash (None for the other reasons, which are not news)."""
        if not self.crash:
            return None
        how = "was killed by the OOM killer" if self.oom_killed else f"exited with code {self.exit_code}"
        if self.reason == "left-down":
            return f"service {self.service} {how}; restart policy {self.policy!r}: left down"
        when = "now" if self.restart_at is None else f"in {self.restart_at - now:.1f}s"
        extra = " (crash looping)" if self.reason == "crash-loop" else ""
        return f"service {self.service} {how}; restart {when}{extra}"


@dataclass
class ServiceTracker:
    """Crash streaks, backoff and records of every service of one stack."""

    backoff: bo.BackoffPolicy = field(default_factory=bo.BackoffPolicy)
    records: dict[str, ServiceRecord] = field(default_factory=dict)
    _history: dict[str, bo.CrashHistory] = field(default_factory=dict)
    _runtime: dict[str, ServiceRuntime] = field(default_factory=dict)
    _seen: dict[str, float | None] = field(default_factory=dict)   # container id -> FinishedAt counted

    # -- what the planner, the loop and the status read ----------------------------------------

    def runtime(self, service: str) -> ServiceRuntime:
        return self._runtime.get(service, ServiceRuntime())

    def runtimes(self) -> tuple[tuple[str, ServiceRuntime], ...]:
        """Every service's runtime, in the form :class:`runtime.observed.Policy` takes."""
        return tuple(sorted(self._runtime.items()))

    def record(self, service: str) -> ServiceRecord:
        return self.records.get(service, ServiceRecord())

    def held(self, service: str, now: float) -> bool:
        """Whether the service waits out its restart backoff at ``now``."""
        at = self.runtime(service).next_start_at
        return at is not None and at > now

    def next_wakeup(self, now: float) -> float | None:
        """The earliest backoff deadline still ahead, when the loop must wake to restart."""
        due = [rt.next_start_at for rt in self._runtime.values() if rt.next_start_at and rt.next_start_at > now]
        return min(due) if due else None

    # -- what happened -------------------------------------------------------------------------

    def note_exits(self, stack: StackSpec, observed: ObservedState, ledger: StopLedger, *,
                   now: float, wall: float, supervisor_started: float) -> list[ExitVerdict]:
        """Verdicts on every exit not counted before (a die event and a missed one alike)."""
        wanted = set(stack.service_names)
        verdicts: list[ExitVerdict] = []
        for c in observed.containers:
            if c.service not in wanted or c.status not in ("exited", "dead"):
                continue
            if c.id in self._seen and self._seen[c.id] == c.finished_at:
                continue
            self._seen[c.id] = c.finished_at
            verdicts.append(self._verdict(stack, c, ledger, now=now, wall=wall,
                                          supervisor_started=supervisor_started))
        present = {c.id for c in observed.containers}
        for cid in [k for k in self._seen if k not in present]:
            del self._seen[cid]
        return verdicts

    def _verdict(self, stack: StackSpec, c: ObservedContainer, ledger: StopLedger, *,
                 now: float, wall: float, supervisor_started: float) -> ExitVerdict:
        policy = stack.service(c.service).restart
        kind = exit_kind(c, policy, stopped_by_us=ledger.expected_stop(c.id))
        base = ExitVerdict(c.service, c.id, "stopped", c.exit_code, c.oom_killed, policy=describe_restart(policy))
        if kind == "stopped":
            return base
        if kind == "completed":
            self._record_exit(c.service, c.exit_code, c.finished_at, c.oom_killed)
            return replace(base, reason="completed")
        if c.finished_at is not None and c.finished_at < supervisor_started:
            self._record_exit(c.service, c.exit_code, c.finished_at, c.oom_killed)
            return replace(base, reason="before-us")
        rt = self.crashed(c.service, c.exit_code, c.finished_at, c.oom_killed, started_at=c.started_at,
                          now=now, wall=wall)
        if not wants_restart(c, policy, rt):
            return replace(base, reason="left-down")
        return replace(base, reason="crash-loop" if rt.crash_looping else "crashed", restart_at=rt.next_start_at)

    def crashed(self, service: str, exit_code: int | None, finished_at: float | None, oom: bool, *,
                started_at: float | None, now: float, wall: float) -> ServiceRuntime:
        """Count a crash (or a start that failed: ``started_at`` None) into the streak."""
        # Backoff runs on the monotonic clock; convert the engine's wall-clock start time.
        started = None if started_at is None else now - max(0.0, wall - started_at)
        hist = bo.record_crash(self._history.get(service, bo.CrashHistory()), now, started, self.backoff)
        self._history[service] = hist
        rt = bo.runtime_after_crash(hist, now, exit_code, self.backoff)
        self._runtime[service] = rt
        if exit_code is not None or oom:
            self._record_exit(service, exit_code, finished_at or wall, oom)
        return rt

    def started(self, service: str) -> None:
        """The runtime started the service's stopped container again (Start, Restart)."""
        rec = self.record(service)
        self.records[service] = replace(rec, restarts=rec.restarts + 1)

    def replaced(self, service: str) -> None:
        """The service got a new container on purpose (Create, Recreate): any crash streak is over."""
        self._history.pop(service, None)
        self._runtime.pop(service, None)

    def forget(self) -> None:
        """Back to just deployed (``apply --reset``): records, crash streaks and backoff go. The
        exits already seen stay seen, so a container that crashed before is not counted again."""
        self.records.clear()
        self._history.clear()
        self._runtime.clear()

    def new_configuration(self) -> None:
        """A new configuration is a new situation: every crash streak starts over."""
        self._history.clear()
        self._runtime.clear()

    def _record_exit(self, service: str, exit_code: int | None, finished_at: float | None, oom: bool) -> None:
        self.records[service] = replace(self.record(service), last_exit_code=exit_code, last_exit_at=finished_at,
                                        oom_killed=oom)
