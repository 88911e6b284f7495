"""The disk guard as the supervisor runs it: opened once the stack is loaded, idle before.

The supervisor calls :meth:`StackDisk.open` once it holds the project's lock and knows the
stack, then the other methods at fixed points of every reconcile (what each step does is in
:mod:`runtime.diskguard`). Before ``open`` — or in a supervisor assembled by a test without
it — every step is a no-op, so the loop never has to ask whether there is a guard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import docker

from runtime.actions import Action, ActionResult
from runtime.diskguard import DiskGuard
from runtime.diskio import DiskIO, UsageProvider
from runtime.errors import ArmstackError, EngineError
from runtime.observed import Desired, ObservedState
from runtime.settings import RuntimeSettings
from runtime.state import StateStore

Log = Callable[..., None]


class Admission(NamedTuple):
    """What :meth:`StackDisk.admit` lets through."""

    allowed: list[Action]
    refusals: list[str]    # a sentence per update newly refused for lack of space
    readmitted: bool       # an update refused earlier fits now and goes through


class StackDisk:
    def __init__(self, usage: UsageProvider | None = None) -> None:
        self.usage = usage   # injected in tests: a fake small disk
        self.guard: DiskGuard | None = None

    def open(self, client: docker.DockerClient, store: StateStore, desired: Desired, settings: RuntimeSettings,
             observe: Callable[[], ObservedState], log: Log) -> None:
        """Set up the guard and clean up what earlier runs of the stack left (ours only)."""
        io = DiskIO(client, desired.stack.project, extra_labels=settings.extra_labels, engine_root=settings.engine_root)
        try:   # a damaged disk.json is moved aside instead of failing every boot
            store.check_disk_file(on_warning=lambda m: log(m, level="warning"))
        except ArmstackError as exc:
            log(str(exc), level="warning")
        self.guard = DiskGuard(io, settings.disk, store.dir / "disk.json", log, usage=self.usage)
        try:
            observed = observe()
        except EngineError:
            return   # the first reconcile reports an unreachable engine
        self.guard.note_observed(observed, desired)
        self.guard.boot_cleanup(observed, desired)

    def check(self, observed: ObservedState, desired: Desired) -> None:
        """Note the images in use; above the high watermark, evict down to the low one."""
        if self.guard is not None:
            self.guard.note_observed(observed, desired)
            self.guard.check(observed, desired)

    def admit(self, actions: Sequence[Action], observed: ObservedState, desired: Desired) -> Admission:
        """Drop a Build/Pull that would not fit."""
        if self.guard is None:
            return Admission(list(actions), [], False)
        was_refused = set(self.guard.refused)
        allowed, refusals = self.guard.admit(actions, observed, desired)
        return Admission(allowed, refusals, bool(was_refused - set(self.guard.refused)))

    def note_results(self, results: list[ActionResult], observed: ObservedState, desired: Desired) -> set[str]:
        """The services whose update ran out of space (retried with backoff by the guard)."""
        if self.guard is None:
            return set()
        return self.guard.note_results(results, observed, desired)

    def next_due(self) -> float | None:
        """Monotonic time of the next disk check or retry of a refused update."""
        return self.guard.next_due() if self.guard is not None else None

    def status_json(self) -> dict[str, Any]:
        return self.guard.status_json() if self.guard is not None else {}
