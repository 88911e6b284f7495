"""The release keeper: probation of replaced services and their rollback, around the supervisor loop.

It holds the release running before the current apply (its stack spec, and the image ids its
containers ran) and the :class:`runtime.rollback.RollbackState`; the decisions are the pure
functions of ``runtime.rollback``. The supervisor tells it when an apply begins, when a service
was replaced and when one crashed, and asks it each reconcile whether a probation failed; a
:class:`Rollback` it answers with is a :class:`runtime.observed.Desired` the planner converges
to like any other (no build, no pull: the previous images are pinned by id).

It never touches the engine or the disk: the supervisor persists :attr:`ReleaseKeeper.state`
with the rest of ``state.json`` (before acting on a rollback, so a power cut finishes it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from runtime import rollback as rb
from runtime.compose import snapshot
from runtime.compose.model import StackSpec
from runtime.compose.source import StackSource
from runtime.observed import Desired, ObservedState
from runtime.report import kept_container
from runtime.tracker import ExitVerdict, ServiceTracker

Log = Callable[..., None]


@dataclass(frozen=True)
class Rollback:
    """A failed probation: the group going back, why, and the desired state that does it."""

    services: frozenset[str]
    reason: str
    desired: Desired


def pinned(desired: Desired, stack: StackSpec, images: dict[str, str]) -> Desired:
    """``desired`` for ``stack``, with the services of ``images`` on those image ids."""
    keep = tuple(sorted({**dict(desired.pinned_images), **images}.items()))
    return dataclasses.replace(desired, stack=stack, pinned_images=keep)


Loader = Callable[[rb.PreviousRelease], StackSpec | None]


def load_snapshot(release: rb.PreviousRelease) -> StackSpec | None:
    """The stack a release was run with, from its snapshot (None if it has none or it is damaged)."""
    if release.stack is None:
        return None
    try:
        return snapshot.from_json(dict(release.stack))
    except (TypeError, ValueError, KeyError):
        return None


class ReleaseKeeper:
    """Probation and rollback state of one stack (see the module docstring)."""

    def __init__(self, probation: float = rb.DEFAULT_PROBATION, mode: rb.RollbackMode = "service",
                 log: Log | None = None, load: Loader | None = None) -> None:
        self.probation = probation
        self.mode: rb.RollbackMode = mode
        self.log: Log = log or (lambda *a, **k: None)
        self.load: Loader = load or load_snapshot
        self.state = rb.RollbackState()
        self.current_stack: StackSpec | None = None    # the release running, once settled
        self.previous_stack: StackSpec | None = None   # the release a rollback goes back to
        self.fingerprint: dict[str, str] = {}           # of the release being applied / running
        self.changed: frozenset[str] = frozenset()
        self._crashes: dict[str, list[ExitVerdict]] = {}   # service on probation -> its crashes

    # -- releases -------------------------------------------------------------------------------

    def begin(self, new: Desired) -> rb.BadRelease | None:
        """A release is about to be applied.

        Returns the remembered bad release it repeats (the caller refuses it; nothing changes
        here). Otherwise, when it differs from the release running, that one becomes the release
        to roll back to, and earlier failures are forgotten.
        """
        fp = rb.release_fingerprint(new.stack, dict(new.build_hashes))
        bad = rb.known_bad(self.state.bad, fp)
        if bad is not None:
            return bad
        cur = self.state.current
        previous = self.state.previous
        if cur is not None and dict(cur.fingerprints) != fp:
            previous = cur
            self.previous_stack = self.current_stack   # None: loaded from its files if a rollback needs it
        self.fingerprint = fp
        self.changed = rb.changed_services(previous.fingerprints if previous else {}, fp)
        self.state = dataclasses.replace(self.state, previous=previous, probation=(), rolled_back=(), bad=())
        self._crashes.clear()
        return None

    def settled(self, stack: StackSpec, observed: ObservedState, source: StackSource | None, *,
                ok: bool = True) -> None:
        """The apply finished and no probation runs: what runs now is the current release.

        An apply that failed otherwise than by a rollback (a build error, a timeout) leaves the
        release running before it as the current one: half of it may not run at all.
        """
        if self.state.probation or not (ok or self.state.rolled_back):
            return
        images = {}
        for name in stack.service_names:
            c = kept_container(observed, name)
            if c is not None and c.image_id:
                images[name] = c.image_id
        fingerprints = dict(self.fingerprint)
        prev = self.state.previous
        for name in self.state.rolled_back:   # back on the previous release: its fingerprint
            fingerprints.pop(name, None)
            if prev is not None and name in prev.fingerprints:
                fingerprints[name] = prev.fingerprints[name]
        current = rb.PreviousRelease(source, images, fingerprints, snapshot.to_json(stack))
        self.current_stack = stack
        self.fingerprint = fingerprints
        self.state = dataclasses.replace(self.state, current=current)

    def boot(self, new: Desired, now: float) -> tuple[Desired, rb.BootDecision]:
        """The desired state a booting supervisor (or a one-shot apply) applies, from the persisted
        state: the file as given, the release rolled back before, or probation resumed."""
        fp = rb.release_fingerprint(new.stack, dict(new.build_hashes))
        decision = rb.boot_decision(self.state, fp)
        prev = self.state.previous
        if decision.kind == "as-given" or prev is None:
            if self.begin(new) is not None:   # bad, but nothing to roll back to: applied as given
                self.state = dataclasses.replace(self.state, bad=())
                self.begin(new)
            return new, rb.BootDecision("as-given")
        stack = self.previous_stack or self.load(prev)
        if stack is None:
            self.log("the previous release cannot be loaded any more; applying the file as given", level="warning")
            self.state = dataclasses.replace(self.state, bad=())
            self.begin(new)
            return new, rb.BootDecision("as-given")
        self.previous_stack = stack
        self.fingerprint = fp
        self.changed = rb.changed_services(prev.fingerprints, fp)
        if decision.kind == "resume":
            entries = tuple(dataclasses.replace(p, started_at=now) for p in self.state.probation
                            if p.service in decision.services)
            self.state = dataclasses.replace(self.state, probation=entries, rolled_back=())
            self.log(f"probation of {', '.join(decision.services)} starts again after the restart")
            return new, decision
        group = frozenset(decision.services)
        self.state = dataclasses.replace(self.state, probation=(), rolled_back=tuple(sorted(group)))
        self.log(f"this release was rolled back ({decision.reason}); running {', '.join(sorted(group))} "
                 "from the previous release")
        images = {s: prev.images[s] for s in group if s in prev.images}
        return pinned(new, rb.rolled_back_stack(new.stack, stack, group), images), decision

    # -- probation ------------------------------------------------------------------------------

    def replaced(self, stack: StackSpec, service: str, now: float) -> None:
        """The current apply gave ``service`` a new container: its probation starts."""
        prev, cur = self.state.previous, self.state.current
        if (prev is None or service in self.state.rolled_back or service not in prev.images
                or service not in stack.service_names):
            return   # nothing to go back to, or the container is the rollback itself
        if cur is not None and dict(cur.fingerprints) == self.fingerprint:
            return   # the release running was proven already (a dead container replaced, a reboot)
        seconds, problem = rb.probation_seconds(stack.service(service), self.probation)
        if problem is not None:
            self.log(problem, level="warning")
        if seconds <= 0:
            return
        entries = tuple(p for p in self.state.probation if p.service != service)
        entry = rb.Probation(service, now, seconds, self.fingerprint.get(service, ""))
        self.state = dataclasses.replace(self.state, probation=entries + (entry,))
        self._crashes.pop(service, None)   # a crash of the container it replaced is not its own
        self.log(f"service {service} is on probation for {seconds:g} s")

    def crashed(self, verdict: ExitVerdict) -> None:
        if verdict.crash and self.on_probation(verdict.service):
            self._crashes.setdefault(verdict.service, []).append(verdict)

    def on_probation(self, service: str | None = None) -> bool:
        return any(service is None or p.service == service for p in self.state.probation)

    def next_due(self) -> float | None:
        """When the earliest probation ends (epoch seconds)."""
        return min((p.until for p in self.state.probation), default=None)

    def facts(self, stack: StackSpec, observed: ObservedState, tracker: ServiceTracker,
              service: str) -> rb.ServiceFacts:
        from runtime.exits import completed

        c = kept_container(observed, service)
        crashes = self._crashes.get(service, [])
        crash = crashes[-1] if crashes else None
        rt = tracker.runtime(service)
        return rb.ServiceFacts(
            status=c.status if c is not None else None, health=c.health if c is not None else None,
            crashes=len(crashes),
            last_exit_code=crash.exit_code if crash is not None else rt.last_exit_code,
            oom_killed=crash.oom_killed if crash is not None else False,
            crash_looping=rt.crash_looping,
            completed=c is not None and completed(c, stack.service(service).restart))

    def check(self, desired: Desired, observed: ObservedState, tracker: ServiceTracker,
              now: float) -> Rollback | None:
        """Judge every probation; a rollback when one failed (the state already says so)."""
        failed: dict[str, str] = {}
        left: list[rb.Probation] = []
        for p in self.state.probation:
            if p.service not in desired.stack.service_names:
                continue
            verdict = rb.judge(p, self.facts(desired.stack, observed, tracker, p.service), now)
            if verdict.state == "failed":
                failed[p.service] = verdict.reason
            elif verdict.state == "pending":
                left.append(p)
            else:
                self.log(f"service {p.service} passed its {p.seconds:g} s probation")
        if not failed:
            if len(left) != len(self.state.probation):
                self.state = dataclasses.replace(self.state, probation=tuple(left))
            return None
        first = sorted(failed)[0]
        reason = rb.rollback_reason(first, failed[first])
        prev = self.state.previous
        assert prev is not None   # replaced() put them on probation
        if self.previous_stack is None:
            self.previous_stack = self.load(prev)
        if self.previous_stack is None:
            self.state = dataclasses.replace(self.state, probation=tuple(left))
            self.log(f"{reason}; but the previous release cannot be loaded, so it cannot be rolled back: the release "
                     "stays", level="error")
            return None
        candidates = self.changed | {p.service for p in self.state.probation}
        group = rb.rollback_group(desired.stack, failed, candidates, self.mode)
        present = {img.id for img in observed.images}
        missing = rb.missing_images([s for s in group if s in self.previous_stack.service_names], prev.images,
                                    present)
        self.state = dataclasses.replace(self.state, probation=tuple(p for p in left if p.service not in group))
        if missing:
            self.log(f"{reason}; but the previous image of {', '.join(missing)} is gone, so it cannot be rolled "
                     "back without a build or a download: the release stays", level="error")
            return None
        bad = rb.BadRelease({s: self.fingerprint[s] for s in sorted(group) if s in self.fingerprint}, reason, now)
        totals = dict(self.state.totals)
        for s in group:
            totals[s] = totals.get(s, 0) + 1
        record = rb.RollbackRecord(tuple(sorted(group)), first, reason, now)
        self.state = dataclasses.replace(self.state, rolled_back=tuple(sorted(group)),
                                         bad=rb.remember(self.state.bad, bad), last=record, totals=totals)
        self.log(f"{reason}; rolling back {', '.join(sorted(group))} to the previous release", level="error")
        images = {s: prev.images[s] for s in group if s in prev.images}
        stack = rb.rolled_back_stack(desired.stack, self.previous_stack, group)
        return Rollback(frozenset(group), reason, pinned(desired, stack, images))

    # -- status ---------------------------------------------------------------------------------

    def rollbacks(self, service: str) -> int:
        return self.state.totals.get(service, 0)
