"""The supervisor: keeps one compose stack true on the engine for as long as it runs.

Life cycle of ``Supervisor.run()``::

    load + validate the compose file      (errors: log every problem, exit 2, touch nothing)
    take the project's flock              (held: another supervisor runs, exit 4)
    write the pid file, subscribe to engine events
    apply generation N: plan → execute → observe until only Waits remain
    loop: block on the event queue until an event, a signal, a backoff deadline, the apply
          deadline or the periodic reconcile is due — never a polling sleep —
          then observe, note new exits (crash history → backoff), plan, execute
    SIGTERM/SIGINT: stop the stack in reverse dependency order (unless detach-on-exit), exit 0
    SIGHUP: reload (the newest request-<id>.json from ``armstack apply``, else the same file) as
            generation N+1; the result names the request id, older requests are answered as dropped
            (runtime.applies); a request of ``apply --reset`` first forgets every service's
            history (restart counts, backoff, probation, rollback memory): as just deployed

A service the apply replaced is on probation (runtime.releases, decisions in runtime.rollback):
failing it rolls its group back to the previous release, and the apply answers "rolled back".

Crashes are found by comparing observed exits with the ones already counted, so a ``die``
event and a periodic reconcile that finds an exit nobody reported are handled the same way.
``once=True`` is ``armstack apply`` without a supervisor: the same loop, returning as soon as
the apply succeeded or failed and leaving the stack running.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker

from runtime import backoff as bo
from runtime.actions import (
    Action,
    ActionResult,
    Build,
    Create,
    Pull,
    Recreate,
    Restart,
    Start,
    Wait,
    describe,
)
from runtime.applies import ApplyChannel
from runtime.compose.model import RestartMode, StackSpec
from runtime.compose.source import StackSource
from runtime.control import ProjectLock
from runtime.desired import make_desired
from runtime.diskio import UsageProvider
from runtime.errors import (
    EXIT_CONFLICT,
    EXIT_ENGINE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ArmstackError,
    ComposeError,
    EngineError,
)
from runtime.events import EventWatcher
from runtime.executor import Executor
from runtime.exits import DEFAULT_RESTART, with_default_restart
from runtime.imagefailures import ImageFailures
from runtime.logfollow import LogFollower
from runtime.logs import LogPresenter
from runtime.observed import Desired, ObservedState, Policy
from runtime.planner import plan
from runtime.publish import Publisher
from runtime.reaction import ReactionTimes
from runtime.releases import ReleaseKeeper
from runtime.report import merge_results, settled_at
from runtime.roundfailures import RoundFailures
from runtime.servicestatus import service_statuses
from runtime.settings import RuntimeSettings
from runtime.stackdisk import StackDisk
from runtime.state import (
    ApplyResult,
    PersistedState,
    StateStore,
    StatusDocument,
    SupervisorInfo,
    atomic_write_json,
)
from runtime.tracker import ServiceTracker
from runtime.wakeups import Signal, sleep_for, sort_batch

_log = logging.getLogger("armstack.supervisor")

EXIT_INVALID = EXIT_USAGE   # the file the supervisor was started with cannot be used

MAX_ROUNDS = 25            # plan/execute rounds in one reconcile: a chain of N services needs N
ENGINE_RETRY = 5.0         # seconds before retrying after the engine failed a reconcile


@dataclass(frozen=True)
class LoadedStack:
    """A stack as the supervisor runs it, with what the loader warned about while reading it."""

    stack: StackSpec
    warnings: tuple[str, ...] = ()


def load_stack_or_problems(source: StackSource, default_restart: RestartMode = DEFAULT_RESTART) -> LoadedStack:
    """The stack ``source`` names, loaded (ComposeError if invalid) with its restart policies
    resolved, and the loader's warnings."""
    from runtime.compose.loader import load_source

    result = load_source(source)
    return LoadedStack(with_default_restart(result.stack, default_restart), tuple(str(w) for w in result.warnings))


def main_file(source: StackSource) -> Path:
    """The main compose file of ``source``, for messages and the status: the path as given when
    it names none (loading it then says why)."""
    from runtime.compose.loader import find_compose_file

    try:
        return Path(find_compose_file(source.paths[0])).resolve()
    except ComposeError:
        return Path(source.paths[0]).resolve()


class Supervisor:
    """Supervises one stack; see the module docstring for the life cycle."""

    def __init__(
        self,
        client: docker.DockerClient,
        source: StackSource | Path | str,
        presenter: LogPresenter | None = None,
        reconcile_interval: float = 30.0,
        backoff: bo.BackoffPolicy = bo.BackoffPolicy(),  # noqa: B008 - frozen, safe as a default
        restart_unhealthy: bool = True,
        *,
        detach_on_exit: bool = False,
        once: bool = False,
        apply_timeout: float = 300.0,
        settings: RuntimeSettings | None = None,
        disk_usage: UsageProvider | None = None,
        forget_history: bool = False,
    ) -> None:
        # Without settings (tests, embedding) the environment is read here, once, with the
        # same validation as the CLI's: a bad value raises SettingsError (a usage error).
        self.settings = settings if settings is not None else RuntimeSettings.from_environ()
        self.client = client
        # Files, project, profiles and the variables they are read with, kept for reloads (a bare
        # path: that file, read with this process's environment).
        if not isinstance(source, StackSource):
            source = StackSource.of(source)
        if source.env is None:
            source = source.with_env(self.settings.environ)
        self.source = source
        self.compose_path = main_file(source)
        self.presenter = presenter or LogPresenter()
        self.reconcile_interval = reconcile_interval
        self.restart_unhealthy = restart_unhealthy
        self.detach_on_exit = detach_on_exit
        self.once = once
        self.forget_history = forget_history   # `apply --reset` without a supervisor: forget at boot
        self.disk = StackDisk(usage=disk_usage)   # disk_usage: injected in tests, a fake small disk
        # Watchdog and metrics: the endpoint and systemd read only what the loop publishes here.
        self.publisher = Publisher(self.settings.listen, self.settings.systemd, self.presenter.runtime)

        self.queue: queue.Queue[Any] = queue.Queue()
        self.stack: StackSpec | None = None
        self.desired: Desired | None = None
        self.executor: Executor | None = None
        self.store: StateStore | None = None
        self.lock: ProjectLock | None = None
        self.events: EventWatcher | None = None
        self.follower: LogFollower | None = None
        self.persisted = PersistedState()
        self.generation = 0
        self.applied_at: float | None = None
        self.started_at = time.time()
        self.ready = False

        self.tracker = ServiceTracker(backoff)
        self.image_failures = ImageFailures()
        self.waits: dict[str, list[str]] = {}
        self.observed = ObservedState()
        self.applies = ApplyChannel(self.presenter.runtime, apply_timeout)
        self.releases = ReleaseKeeper(self.settings.probation, self.settings.rollback, self.presenter.runtime)
        self.next_reconcile = 0.0
        self._stop = False
        self._interrupted = False
        self._last_status: dict[str, Any] | None = None
        self.reaction = ReactionTimes()
        self.round_failures = RoundFailures()

    # -- public ---------------------------------------------------------------------------------

    def request_stop(self, *, interrupted: bool = False) -> None:
        """Ask the loop to stop (thread-safe; what the signal handlers call)."""
        self._interrupted = self._interrupted or interrupted
        self.queue.put(Signal("stop"))

    def request_reload(self) -> None:
        self.queue.put(Signal("reload"))

    @property
    def last_apply(self) -> ApplyResult | None:
        return self.applies.last

    @property
    def apply_ok(self) -> bool | None:
        return self.applies.ok

    @property
    def restart_marks(self) -> list[tuple[str, float]]:
        """When each crash restart was issued (for latency measurements)."""
        return self.reaction.marks

    def run(self) -> int:
        log = self.presenter.runtime
        try:
            loaded = load_stack_or_problems(self.source, self.settings.default_restart)
        except ComposeError as exc:
            for p in exc.problems:
                log(str(p), level="error")
            log(f"{self.compose_path} is invalid; nothing was changed.", level="error")
            return EXIT_INVALID
        except ArmstackError as exc:
            log(str(exc), level="error")
            return EXIT_INVALID
        stack = loaded.stack
        for w in loaded.warnings:
            log(w, level="warning")
        try:
            self.store = StateStore(self.settings.data_dir, stack.project)
            self.store.ensure_dir()
        except ArmstackError as exc:
            log(str(exc), level="error")
            return EXIT_CONFLICT
        self.lock = ProjectLock(self.store.lock_path)
        if not self.lock.acquire():
            log(f"Another supervisor already runs project {stack.project!r} (lock {self.store.lock_path} is "
                "held); use `armstack apply` to hand it a new file, or stop it first.", level="error")
            return EXIT_CONFLICT
        handlers = self._install_signals()
        try:
            return self._run_watched(stack)
        finally:
            self._restore_signals(handlers)
            self.lock.release()

    # -- watchdog and metrics -------------------------------------------------------------------

    def _run_watched(self, stack: StackSpec) -> int:
        """``_run_locked`` with the endpoint and the systemd notifier around it (started under the
        project's lock, so a second supervisor never takes over the first one's socket)."""
        if self.once:
            return self._run_locked(stack)
        try:
            self.publisher.start()
        except ArmstackError as exc:   # the endpoint's address cannot be listened on
            self.presenter.runtime(str(exc), level="error")
            return EXIT_INVALID
        try:
            return self._run_locked(stack)
        finally:
            self.publisher.stop()

    # -- life cycle -----------------------------------------------------------------------------

    def _run_locked(self, stack: StackSpec) -> int:
        assert self.store is not None
        log = self.presenter.runtime
        if not self.once:
            atomic_write_json(self.store.pid_path, os.getpid())
        self.persisted = self.store.load(on_warning=lambda m: log(m, level="warning"))
        self.generation = self.persisted.generation
        self.tracker.records = dict(self.persisted.services)
        self.releases.state = self.persisted.rollback
        if self.forget_history:
            self._forget_history()
        self.presenter.add_names(stack.service_names)
        self.follower = LogFollower(self.client, self.presenter)
        try:
            refused = self._set_stack(stack, boot=True)
            assert self.desired is not None and self.executor is not None
            self.disk.open(self.client, self.store, self.desired, self.settings, self.executor.observe,
                           self.presenter.runtime)
            self.events = EventWatcher(self.client, stack.project, self.queue)
            self.events.start()
            # A request left over from before a restart is stale: this boot applies the file given.
            self.applies.take_request(self.store.dir, at_boot=True)
            self._start_generation(self.generation + 1)
            if refused is not None:
                self.applies.note_rollback(refused)
            first = self._reconcile()
            if first is not None and self.once:
                log(first, level="error")
                return EXIT_ENGINE
            self._attach_running(initial=True)
            code = self._loop()
        except EngineError as exc:
            log(str(exc), level="error")
            return EXIT_ENGINE
        finally:
            self._shutdown()
        return code

    def _loop(self) -> int:
        log = self.presenter.runtime
        while True:
            if self.once and self.applies.ok is not None:
                return EXIT_OK if self.applies.ok else EXIT_FAILED
            if self._stop:
                break
            try:
                item = self.queue.get(timeout=self._timeout())
            except queue.Empty:
                item = None
            items = [item] if item is not None else []
            while True:  # coalesce a burst (die + oom + start...) into one reconcile
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            batch = sort_batch(items)
            self._stop = self._stop or batch.stop
            for service, at in batch.dies:
                self.reaction.die_read(service, at)
            for level, note in batch.notes:
                log(note, level=level)
            if self._stop:
                break
            if batch.reload:
                self._reload()
            error = self._reconcile()
            self.reaction.round_done()
            if error is not None:
                log(error, level="error")
        if self._interrupted and self.once:
            return EXIT_INTERRUPTED
        if not self.once:
            if self.detach_on_exit:
                log("stopping the supervisor; the stack keeps running (detach on exit)")
            else:
                self._stop_stack()
        return EXIT_OK

    def _timeout(self) -> float:
        now, wall = time.monotonic(), time.time()
        pending = self.applies.pending
        settled = settled_at(self.stack, self.observed) if pending is not None and self.stack is not None else None
        return sleep_for(
            now, wall, next_reconcile=self.next_reconcile,
            monotonic_due=(self.tracker.next_wakeup(now), pending.deadline if pending is not None else None,
                           self.disk.next_due()),
            # An apply in flight: look again once the stack has settled.
            wall_due=(self.releases.next_due(), settled if settled is not None and settled > wall else None),
        )

    def _shutdown(self) -> None:
        if self.events is not None:
            self.events.stop()
        if self.follower is not None:
            self.follower.stop_all(timeout=2.0)
        self.ready = False
        if self.store is not None and self.stack is not None:
            try:
                self._write_status(force=True)
                if not self.once:
                    self.store.pid_path.unlink(missing_ok=True)
            except ArmstackError:
                pass

    def _stop_stack(self) -> None:
        assert self.executor is not None and self.stack is not None
        log = self.presenter.runtime
        log("stopping the stack")
        try:
            observed = self.executor.observe()
        except EngineError as exc:
            log(str(exc), level="error")
            return
        for err in self.executor.stop_stack(observed):
            log(err, level="error")
        log("stack stopped")

    # -- signals --------------------------------------------------------------------------------

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread may set handlers (tests run supervisors in threads)
        old: dict[int, Any] = {}

        def on_term(signum: int, frame: object) -> None:
            self.request_stop(interrupted=signum == signal.SIGINT)

        def on_hup(signum: int, frame: object) -> None:
            self.request_reload()

        for sig, fn in ((signal.SIGTERM, on_term), (signal.SIGINT, on_term), (signal.SIGHUP, on_hup)):
            old[sig] = signal.signal(sig, fn)
        return old

    def _restore_signals(self, old: dict[int, Any]) -> None:
        for sig, fn in old.items():
            signal.signal(sig, fn)

    # -- applies --------------------------------------------------------------------------------

    def _set_stack(self, stack: StackSpec, *, boot: bool = False) -> str | None:
        """Make ``stack`` the desired one; ArmstackError if it is a release rolled back before.

        At boot such a release is run rolled back instead, and the reason is returned.
        """
        desired = make_desired(self.client, stack, release=self._release(stack))
        refused = None
        if boot:
            desired, decision = self.releases.boot(desired, time.time())
            if decision.kind == "rolled-back":
                refused = f"refused: this release was rolled back before ({decision.reason})"
        else:
            bad = self.releases.begin(desired)
            if bad is not None:
                raise ArmstackError(f"refused: this release was rolled back before ({bad.reason}); the previous "
                                    "release keeps running. Apply a different release.")
        self._use(desired)
        return refused

    def _use(self, desired: Desired) -> None:
        stack = self.stack = desired.stack
        self.desired = desired
        if self.executor is None:
            self.executor = Executor(self.client, self.desired, output=self.presenter,
                                     extra_labels=self.settings.extra_labels)
        else:
            self.executor.desired = self.desired
        self.presenter.add_names(stack.service_names)
        if self.follower is not None:
            self.follower.set_unattached(s.name for s in stack.services if not s.attach)

    def _release(self, stack: StackSpec) -> str:
        if self.settings.release is not None:
            return self.settings.release
        return self.persisted.release

    def _start_generation(self, generation: int, request_id: str | None = None) -> None:
        self.generation = generation
        self.applied_at = time.time()
        self.image_failures.new_generation()
        self.applies.begin(generation, request_id, self.compose_path)

    def _reload(self) -> None:
        assert self.stack is not None
        log = self.presenter.runtime
        assert self.store is not None
        req = self.applies.take_request(self.store.dir)
        pending = self.applies.pending
        if req is None and pending is not None and pending.request_id is not None:
            # The SIGHUP of a request already taken with an earlier one: what it asked for is
            # being applied, and reloading now would only supersede it.
            return
        rid = req.id if req is not None else None
        generation = max(self.generation + 1, req.generation if req is not None else 0)
        # An apply names its own files and profiles, as each `docker compose up` does; a bare
        # SIGHUP reloads the way the stack was last given. Either keeps the running project
        # unless it names one.
        source = self.source if req is None else req.source.with_env(self.settings.environ)
        source = dataclasses.replace(source, project=source.project or self.stack.project)
        path = main_file(source)
        log(f"reload requested: {path}" + (f" (apply request {rid})" if rid else ""))
        try:
            loaded = load_stack_or_problems(source, self.settings.default_restart)
            stack = loaded.stack
            if stack.project != self.stack.project:
                raise ArmstackError(f"the file names project {stack.project!r}, but this supervisor runs "
                                    f"{self.stack.project!r}; use `armstack -p {stack.project} apply`.")
            for w in loaded.warnings:
                log(w, level="warning")
            if req is not None and req.reset:
                self._forget_history()   # before _set_stack: a release remembered as bad is forgotten too
            self._set_stack(stack)
        except Exception as exc:  # noqa: BLE001 - a file that cannot be loaded never ends the supervisor
            problems = exc.problems if isinstance(exc, ComposeError) else []
            for p in problems:
                log(str(p), level="error")
            message = (str(exc).splitlines() or [type(exc).__name__])[0] if not problems else (
                f"{path} is invalid ({len(problems)} error(s)): " + "; ".join(str(p) for p in problems))
            log(f"reload failed, the current stack keeps running: {message}", level="error")
            self.generation = generation
            self.applies.answer(ApplyResult(generation, False, message, time.time(), {}, request_id=rid))
            self._persist()
            self._write_status(force=True)
            return
        self.compose_path = path
        self.source = source
        # A new configuration is a new situation: crash streaks start over.
        self.tracker.new_configuration()
        self.applies.supersede(rid)
        self._start_generation(generation, rid)

    def _forget_history(self) -> None:
        """Back to just deployed (``apply --reset``): what a supervisor starting on an empty state
        directory would know. Restart counts, crash streaks and backoff (runtime.tracker), probation,
        the releases to roll back to and the known-bad ones (runtime.releases) go; the release,
        the generation (answers stay in order) and the containers running stay. Persisted by the
        apply that follows."""
        self.presenter.runtime("forgetting the history of every service: as just deployed")
        self.tracker.forget()
        self.releases = ReleaseKeeper(self.settings.probation, self.settings.rollback, self.presenter.runtime)
        self.reaction.forget()

    def _check_apply(self, observed: ObservedState) -> None:
        """Finish the pending apply once every service is up and probation is over, or once it cannot be."""
        if self.stack is None:
            return
        done = self.applies.check(self.stack, observed, self.tracker, self.waits,
                                  on_probation=self.releases.on_probation())
        if done is not None:
            self.ready = True
            files = tuple(str(Path(f).resolve()) for f in self.source.paths)
            self.releases.settled(self.stack, observed, dataclasses.replace(self.source, paths=files), ok=done.ok)
            self._persist()

    def _judge_probation(self, observed: ObservedState) -> None:
        """Roll back the group of a service that failed its probation (persisted before it acts)."""
        assert self.desired is not None
        rollback = self.releases.check(self.desired, observed, self.tracker, time.time())
        if rollback is None:
            self._persist()   # a probation passed: a power cut must not start it over
            return
        self.applies.note_rollback(rollback.reason)
        self._use(rollback.desired)
        self._persist()

    # -- reconcile ------------------------------------------------------------------------------

    def _policy(self) -> Policy:
        return Policy(now=time.monotonic(), restart_unhealthy=self.restart_unhealthy,
                      runtime=self.tracker.runtimes(), applied_at=self.applied_at,
                      image_failed=self.image_failures.services)

    def _reconcile(self) -> str | None:
        """Observe → plan → execute until only Waits remain; returns an error sentence or None.

        Never raises for a round that fails: whatever ``validate`` accepted must not kill the
        supervisor and with it a running stack. An unexpected exception (a bug) is logged, its
        traceback once per failure site, and the round retried with a doubling delay.
        """
        try:
            error = self._reconcile_round()
        except Exception as exc:  # noqa: BLE001 - the stack outlives a bug in one round
            return self._round_failed(exc)
        self.round_failures.succeeded()
        return error

    def _round_failed(self, exc: Exception) -> str:
        failure = self.round_failures.failed(exc, self.reconcile_interval)
        self.next_reconcile = time.monotonic() + failure.delay
        if failure.first:
            self.presenter.runtime(failure.trace, level="error")
        else:   # the same bug every round would flood the log of a device
            _log.debug("%s", failure.trace)
        return failure.message

    def _reconcile_round(self) -> str | None:
        assert self.executor is not None and self.desired is not None
        self.next_reconcile = time.monotonic() + self.reconcile_interval
        try:
            observed = self.executor.observe()
            self.disk.check(observed, self.desired)
            for _ in range(MAX_ROUNDS):
                self._note_exits(observed)
                self._judge_probation(observed)
                actions = plan(self.desired, observed, self._policy())
                actions = [a for a in actions if not self.image_failures.skip(a)]
                actions = self._disk_admit(actions, observed)
                self.waits = {}
                for a in actions:
                    if isinstance(a, Wait):
                        self.waits.setdefault(a.service, []).append(f"{a.on} ({a.condition})")
                todo = [a for a in actions if not isinstance(a, Wait)]
                if not todo:
                    break
                for a in todo:
                    self.presenter.runtime(describe(a))
                held_before = self.image_failures.services
                results = self.executor.execute(todo)
                failed = self._after(results)
                observed = self.executor.observe()
                if failed and not self.image_failures.fallback_due(held_before, self.desired.stack):
                    break
        except EngineError as exc:
            self.next_reconcile = time.monotonic() + min(ENGINE_RETRY, self.reconcile_interval)
            self.publisher.engine_failed(str(exc))
            return str(exc)
        self.observed = observed
        self._note_exits(observed)
        self._judge_probation(observed)
        self._check_apply(observed)
        self._write_status()
        return None

    def _after(self, results: list[ActionResult]) -> bool:
        assert self.follower is not None
        failed = False
        now = time.monotonic()
        disk_full = self.disk.note_results(results, self.observed, self.desired) if self.desired else set()
        for r in results:
            a = r.action
            svc = r.service
            if not r.ok:
                failed = True
                self.presenter.runtime(r.message or "an action failed", level="error")
                self.applies.note_error(r.message or "an action failed")
                if isinstance(a, Build | Pull):
                    self.image_failures.failed(a, disk_full=a.service in disk_full)
                elif svc is not None and isinstance(a, Create | Start | Restart | Recreate):
                    # A failed start backs off too.
                    self.tracker.crashed(svc, None, None, False, started_at=None, now=now, wall=time.time())
                continue
            if isinstance(a, Start | Restart | Create | Recreate) and svc and r.container_id:
                # since=our start: an adopted container's output from before this supervisor
                # was never ours to print, even when its follower re-attaches from scratch.
                self.follower.follow(svc, r.container_id, since=self.started_at)
            if isinstance(a, Start | Restart) and svc:
                self.tracker.started(svc)
                self.reaction.restarted(svc, now, r.seconds)
            if isinstance(a, Recreate | Create) and svc:
                # Updated on purpose: any crash streak of the old container is over.
                self.tracker.replaced(svc)
                pending = self.applies.pending
                replaced = isinstance(a, Recreate) or r.downtime is not None
                if replaced and pending is not None and pending.rolled_back is None and self.stack is not None:
                    self.releases.replaced(self.stack, svc, time.time())
        if self.applies.pending is not None:
            self.applies.pending.report = merge_results(self.applies.pending.report, results)
        self._persist()
        return failed

    def _note_exits(self, observed: ObservedState) -> None:
        """Hand every exit not seen before to the tracker; log the crashes."""
        assert self.stack is not None and self.executor is not None
        now = time.monotonic()
        for verdict in self.tracker.note_exits(self.stack, observed, self.executor, now=now, wall=time.time(),
                                               supervisor_started=self.started_at):
            self.releases.crashed(verdict)
            message = verdict.message(now)
            if message is not None:
                self.presenter.runtime(message, level="warning")

    def _attach_running(self, *, initial: bool) -> None:
        """Follow the logs of every running container (adopted ones from now on, not their past)."""
        assert self.follower is not None
        for c in self.observed.containers:
            if c.running:
                self.follower.follow(c.service, c.id, since=self.started_at)

    # -- disk -----------------------------------------------------------------------------------

    def _disk_admit(self, actions: list[Action], observed: ObservedState) -> list[Action]:
        """Drop a Build/Pull that would not fit; the refusal fails the pending apply, not the stack."""
        assert self.desired is not None
        allowed, refusals, readmitted = self.disk.admit(actions, observed, self.desired)
        for msg in refusals:
            self.applies.note_error(msg)
        if readmitted and not self.once:
            self.applies.reopen(self.generation)
        return allowed

    # -- persistence ----------------------------------------------------------------------------

    def _persist(self) -> None:
        assert self.store is not None
        state = PersistedState(release=self.desired.release if self.desired else "", generation=self.generation,
                               services=dict(self.tracker.records), rollback=self.releases.state)
        if state != self.persisted:
            try:
                self.store.save(state)
                self.persisted = state
            except ArmstackError as exc:
                self.presenter.runtime(str(exc), level="error")

    def status(self) -> dict[str, Any]:
        assert self.stack is not None
        now_mono, now = time.monotonic(), time.time()
        services = service_statuses(self.stack, self.observed, self.tracker, self.waits, self.reaction,
                                    self.releases, now_mono=now_mono, now=now)
        return StatusDocument(
            project=self.stack.project,
            release=self.desired.release if self.desired else "",
            generation=self.generation,
            supervisor=SupervisorInfo(os.getpid(), self.started_at, self.ready),
            services=services,
            last_apply=self.applies.last,
            disk=self.disk.status_json(),
            dropped_requests=self.applies.dropped,
            answered_requests=self.applies.answered,
            rollback=last.to_json() if (last := self.releases.state.last) is not None else None,
        ).to_json()

    def _write_status(self, *, force: bool = False) -> None:
        assert self.store is not None
        doc = self.status()
        self.publisher.publish(doc)
        comparable = {k: v for k, v in doc.items() if k != "updated_at"}
        if not force and comparable == self._last_status:
            return  # spare the SD card an identical write every reconcile
        try:
            self.store.write_status(doc)
            self._last_status = comparable
        except ArmstackError as exc:
            self.presenter.runtime(str(exc), level="error")

