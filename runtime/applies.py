"""The apply channel: requests from ``armstack apply`` in, one answer per request out.

An apply is a generation of the stack being converged. :class:`ApplyChannel` holds the one in
progress (:class:`PendingApply`), decides when it is finished (:meth:`ApplyChannel.check`:
every service up and no probation running, or a failure that will not heal by itself) and
keeps the answers ``armstack apply`` reads from the status: the last result, the latest few
by request id (a later apply may finish before an earlier one's ``apply`` reads), and why a
request was dropped (superseded, or taken by a restarting supervisor).

It never talks to the engine; the supervisor feeds it observations and the trackers' facts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.compose.model import StackSpec
from runtime.control import ApplyRequest, take_requests
from runtime.errors import StateError
from runtime.observed import ObservedState
from runtime.report import full_report, kept_container, not_ready, removed_services, totals
from runtime.state import ApplyResult
from runtime.tracker import ServiceTracker

MAX_DROPPED = 32           # dropped apply requests remembered in the status for their `apply` to read
# Results of the latest apply requests, by id: a later apply may finish before an earlier one's
# `armstack apply` reads the status, so `last_apply` alone would lose the earlier answer.
MAX_ANSWERED = 8

Log = Callable[..., None]


@dataclass
class PendingApply:
    generation: int
    deadline: float                      # monotonic
    report: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    request_id: str | None = None        # the `armstack apply` request this apply answers
    rolled_back: str | None = None       # "rolled back: <service> <why>" once probation failed


class ApplyChannel:
    """The apply in progress and the answers to every request (see the module docstring)."""

    def __init__(self, log: Log, timeout: float) -> None:
        self.log = log
        self.timeout = timeout
        self.pending: PendingApply | None = None
        self.last: ApplyResult | None = None
        self.ok: bool | None = None                          # outcome of the latest finished apply
        self.dropped: dict[str, str] = {}                    # request id -> why it was not applied
        self.answered: dict[str, dict[str, Any]] = {}        # request id -> its apply result

    # -- requests -------------------------------------------------------------------------------

    def begin(self, generation: int, request_id: str | None, what: Path) -> None:
        self.ok = None
        self.pending = PendingApply(generation, time.monotonic() + self.timeout, request_id=request_id)
        self.log(f"applying generation {generation} of {what}")

    def reopen(self, generation: int) -> None:
        """A refused update goes through after all: report its outcome as the generation's."""
        if self.pending is None:
            self.pending = PendingApply(generation, time.monotonic() + self.timeout)
            self.ok = None

    def take_request(self, state_dir: Path, *, at_boot: bool = False) -> ApplyRequest | None:
        """The newest pending apply request, or None. Never raises.

        Every request taken is answered: the one returned by the apply it starts, the others
        (older ones taken in the same batch; all of them at boot) in ``dropped``. A file that is
        not a valid request is logged and dropped.
        """
        try:
            requests, problems = take_requests(state_dir)
        except (OSError, StateError) as exc:
            self.log(f"cannot read the apply requests in {state_dir}: {exc}", level="warning")
            return None
        for problem in problems:
            self.log(problem, level="warning")
        if at_boot:
            for r in requests:
                self.drop_request(r.id, f"the supervisor restarted before it took the request for {r.file}; "
                                        "this boot applies the file it was started with")
            return None
        if not requests:
            return None
        *older, newest = requests
        for r in older:
            self.drop_request(r.id, f"superseded by a newer apply request ({newest.id}) before it started")
        return newest

    def drop_request(self, request_id: str, reason: str) -> None:
        self.log(f"apply request {request_id} dropped: {reason}", level="warning")
        self.dropped[request_id] = reason
        while len(self.dropped) > MAX_DROPPED:
            del self.dropped[next(iter(self.dropped))]

    def supersede(self, by: str | None) -> None:
        """A newer apply starts: the request of the one in progress is answered as dropped."""
        if self.pending is not None and self.pending.request_id is not None:
            self.drop_request(self.pending.request_id,
                              f"superseded by a newer apply ({by or 'a reload'}) before it finished")

    # -- answers --------------------------------------------------------------------------------

    def answer(self, result: ApplyResult) -> None:
        """Make ``result`` the last apply, and keep it by request id for the `apply` that asked."""
        self.last = result
        if result.request_id is not None:
            self.answered[result.request_id] = result.to_json()
            while len(self.answered) > MAX_ANSWERED:
                del self.answered[next(iter(self.answered))]

    def note_error(self, message: str) -> None:
        if self.pending is not None:
            self.pending.errors.append(message)

    def note_rollback(self, reason: str) -> None:
        """Probation failed: the apply ends as a failure once the previous release is back up."""
        if self.pending is not None and self.pending.rolled_back is None:
            self.pending.rolled_back = reason

    def finish(self, stack: StackSpec, ok: bool, error: str | None) -> ApplyResult:
        assert self.pending is not None
        p = self.pending
        report = full_report(stack, p.report)
        removed = removed_services(stack, p.report)
        result = ApplyResult(p.generation, ok, error, time.time(), report, totals(report, removed), tuple(removed),
                             p.request_id)
        self.answer(result)
        self.ok = ok
        self.pending = None
        if ok:
            self.log(f"generation {p.generation} applied: every service is up")
        else:
            self.log(f"generation {p.generation} failed: {error}", level="error")
        return result

    def check(self, stack: StackSpec, observed: ObservedState, tracker: ServiceTracker,
              waits: Mapping[str, object], *, on_probation: bool) -> ApplyResult | None:
        """Finish the pending apply once every service is up and probation is over, or once it
        cannot be; the result when it finished now, else None."""
        p = self.pending
        if p is None:
            return None
        if p.errors:
            return self.finish(stack, False, p.errors[0])
        missing = not_ready(stack, observed, time.time())
        now = time.monotonic()
        if p.rolled_back is not None and not on_probation:
            if not missing:
                return self.finish(stack, False, p.rolled_back)
            if now >= p.deadline:
                detail = "; ".join(f"{n} {w}" for n, w in missing.items())
                return self.finish(stack, False, f"{p.rolled_back} (the previous release is not up yet: {detail})")
            return None
        if not missing and not on_probation:
            return self.finish(stack, True, None)
        for name, why in missing.items():
            rt = tracker.runtime(name)
            if rt.crash_looping and not on_probation:
                return self.finish(stack, False, f"service {name!r} is crash looping (last exit code "
                                                 f"{rt.last_exit_code})")
            c = kept_container(observed, name)
            held = tracker.held(name, now)
            if (c is not None and c.status in ("exited", "dead") and not held and name not in waits
                    and not on_probation):
                # The plan left it down (its restart policy says so): it will not come up.
                return self.finish(stack, False, f"service {name!r} {why}")
        if now >= p.deadline:
            detail = "; ".join(f"{n} {w}" for n, w in missing.items()) or "the probation of the new release"
            return self.finish(stack, False, f"timed out after {self.timeout:g} s waiting for: {detail}")
        return None
