"""The supervisor's disk guard: watermark checks, boot cleanup, admission of builds and pulls.

The supervisor calls, per reconcile::

    guard.note_observed(observed, desired)     remember which images the stack ran (LRU)
    guard.check(observed, desired)             above the high watermark? evict down to low
    actions, refused = guard.admit(actions, observed, desired)
                                               drop a Build/Pull that would not fit, with a
                                               sentence saying needed vs free and what to do
    guard.note_results(results, observed)      after execute: record pulls; a build that hit
                                               ENOSPC is cleaned up and retried with backoff

and once, before the first apply, ``guard.boot_cleanup(observed, desired)``. Policy decisions
come from ``runtime.disk`` (pure); engine calls go through ``runtime.diskio.DiskIO``. The
guard never raises: a disk it cannot measure is logged once and disk handling is skipped,
so the stack keeps running on a device whose storage cannot be read.

State kept in ``<data_dir>/<project>/disk.json`` (atomic writes, only when it changes):
the ids of the images the runtime built (``built``) or pulled (``pulled``) for the stack, when
each image was last run, and the last cleanup. The recorded ids are the only proof that an
image is the stack's: labels are inherited through ``FROM`` and copied by ``docker commit``,
so an operator's image can carry the stack's labels. Images built by a release that did not
record ids are therefore never evicted (the safe side); they can be removed by hand.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import disk as D
from runtime.actions import Action, ActionResult, Build, Pull
from runtime.diskio import DiskIO, UsageProvider
from runtime.errors import ArmstackError, DiskFullError, EngineError
from runtime.observed import Desired, ObservedState
from runtime.state import atomic_write_json, read_json

Log = Callable[..., None]
RETRY_FIRST = 5.0      # seconds before a refused update is checked again
RETRY_MAX = 60.0       # backoff cap: space freed by hand is noticed within a minute
CHECK_INTERVAL = 10.0  # watermark check between reconciles
PROBE_SERVICE = "armstack-disk-probe"


@dataclass
class Refusal:
    build_hash: str
    message: str
    next_try: float        # monotonic
    delay: float


def _mb(n: int) -> str:
    return f"{n / D.MIB:.0f} MB"


def context_bytes(action: Build, desired: Desired) -> int:
    """Bytes of the build context the engine receives (files the build would send)."""
    import os

    from runtime.buildctx import context_files

    spec = desired.stack.service(action.service)
    if spec.build is None:
        return 0
    total = 0
    try:
        for rel in context_files(spec.build):
            path = os.path.join(spec.build.context, rel)
            if os.path.isfile(path) and not os.path.islink(path):
                total += os.path.getsize(path)
    except OSError:
        return 0
    return total


def base_refs(action: Build, desired: Desired) -> list[str]:
    from runtime.buildctx import dockerfile_bases

    spec = desired.stack.service(action.service)
    if spec.build is None:
        return []
    try:
        text = Path(spec.build.context, spec.build.dockerfile).read_text(errors="replace")
    except OSError:
        return []
    return dockerfile_bases(text, dict(spec.build.args))


class DiskGuard:
    def __init__(self, io: DiskIO, policy: D.DiskPolicy, state_path: Path | None, log: Log, *,
                 usage: UsageProvider | None = None, check_interval: float = CHECK_INTERVAL,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.io = io
        self.policy = policy
        self.state_path = state_path
        self.log = log
        self._usage_fn = usage
        self.check_interval = check_interval
        self.clock = clock
        self.wall = wall
        self.pulled: dict[str, str] = {}          # image id -> service
        self.built: dict[str, str] = {}           # image id -> service
        self.last_used: dict[str, float] = {}     # image id -> epoch seconds
        self.last_cleanup: dict[str, Any] | None = None
        self.refused: dict[str, Refusal] = {}     # service -> its refused update
        self.usage: D.DiskUsage | None = None
        self.next_check = 0.0
        self._error: str | None = None
        self._saved: dict[str, Any] | None = None
        self._load()

    # -- persistence ------------------------------------------------------------------------

    def _load(self) -> None:
        if self.state_path is None:
            return
        try:
            data = read_json(self.state_path, {}) or {}
        except ArmstackError as exc:
            self.log(f"ignoring {self.state_path}: {exc}", level="warning")
            return
        if isinstance(data, dict):
            self.pulled = {str(k): str(v) for k, v in (data.get("pulled") or {}).items()}
            self.built = {str(k): str(v) for k, v in (data.get("built") or {}).items()}
            self.last_used = {str(k): float(v) for k, v in (data.get("last_used") or {}).items()
                              if isinstance(v, int | float)}
            lc = data.get("last_cleanup")
            self.last_cleanup = lc if isinstance(lc, dict) else None
            self._saved = copy.deepcopy(data)

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {"pulled": self.pulled, "built": self.built, "last_used": self.last_used,
                "last_cleanup": self.last_cleanup}
        if data == self._saved:
            return
        try:
            atomic_write_json(self.state_path, data)
            # A copy: ``data`` holds the live dicts, which would make every later change look saved.
            self._saved = copy.deepcopy(data)
        except ArmstackError as exc:   # a full card is exactly when this may fail: not fatal
            self.log(str(exc), level="warning")

    # -- facts ------------------------------------------------------------------------------

    def measure(self, observed: ObservedState, desired: Desired) -> D.DiskUsage | None:
        """Current usage, or None (logged once) if the engine's storage cannot be measured."""
        try:
            if self._usage_fn is not None:
                usage = self._usage_fn()
            else:
                refs = [desired.stack.image_ref(n) for n in desired.stack.service_names]
                usage = self.io.usage(r for r in refs if observed.image(r) is not None)
        except (EngineError, OSError, ValueError) as exc:
            if str(exc) != self._error:
                self.log(f"disk checks skipped: {exc}", level="warning")
                self._error = str(exc)
            return None
        self._error = None
        previous, self.usage = self.usage, usage
        self._note_read_only(previous, usage)
        return usage

    def _note_read_only(self, previous: D.DiskUsage | None, usage: D.DiskUsage) -> None:
        """Say once when the card turns read-only, and once when it is writable again."""
        was = previous is not None and previous.read_only
        if usage.read_only and not was:
            self.log("the SD card is read-only (a worn card, or its filesystem after write errors): builds, pulls "
                     "and container starts that write to it fail; running services go on. Replace or repair "
                     "the card (fsck at boot)", level="error")
        elif was and not usage.read_only:
            self.log("the SD card is writable again")

    def current(self, observed: ObservedState, desired: Desired) -> dict[str, str]:
        """service -> image id of its current release (what is tagged for it now)."""
        out: dict[str, str] = {}
        for name in desired.stack.service_names:
            img = observed.image(desired.stack.image_ref(name))
            if img is not None:
                out[name] = img.id
        return out

    @property
    def owned(self) -> dict[str, str]:
        """image id -> service, for every image the runtime built or pulled for the stack."""
        return {**self.pulled, **self.built}

    def use_stamp(self) -> float:
        """The time to record as an image's last use: the wall clock, but never before a stamp
        already recorded. The LRU only compares stamps, and a wall clock that jumps back (an NTP
        correction; a board without RTC that booted at its build date) would otherwise rank the
        images used after the jump as the oldest and evict them first. Each stamp is later
        than every earlier one (by 1 ms when the clock is behind), so the order of use is kept
        until the wall clock catches up."""
        newest = max(self.last_used.values(), default=0.0)
        return max(self.wall(), newest + 0.001)

    def note_observed(self, observed: ObservedState, desired: Desired) -> None:
        now = self.use_stamp()
        for c in observed.containers:
            if c.running and c.image_id:
                self.last_used[c.image_id] = now

    def _facts(self, observed: ObservedState, desired: Desired, *, unique: bool
               ) -> tuple[list[D.ImageInfo], int, set[str], set[str]]:
        images, cache = self.io.images(self.owned, self.last_used, unique_sizes=unique)
        current = self.current(observed, desired)
        in_use = {c.image_id for c in observed.containers if c.image_id}
        protected = set(current.values()) | D.releases_to_keep(images, current, self.policy.keep_releases)
        return images, cache, in_use, protected

    # -- cleanup ----------------------------------------------------------------------------

    def _run(self, evictions: Sequence[D.EvictImage | D.PruneBuildCache], why: str,
             before: D.DiskUsage | None) -> int:
        removed: list[str] = []
        freed_est = 0
        for e in evictions:
            if isinstance(e, D.EvictImage):
                err = self.io.remove_image(e.image_id, e.tags)
                if err is None:
                    removed.append(", ".join(e.tags) or e.image_id.removeprefix("sha256:")[:12])
                    freed_est += e.size
                    self.last_used.pop(e.image_id, None)
                    self.pulled.pop(e.image_id, None)
                    self.built.pop(e.image_id, None)
                else:
                    self.log(err, level="warning")
            else:
                got, err = self.io.prune_build_cache(e.keep)
                if err is None:
                    removed.append("build cache")
                    freed_est += got or e.size
                else:
                    self.log(err, level="warning")
        if not evictions:
            return 0
        self.io.forget()
        after = None
        if self._usage_fn is None and before is not None:
            try:
                after = self.io.usage()
            except (EngineError, OSError, ValueError):
                after = None
        freed_bytes = max(0, before.used - after.used) if before is not None and after is not None else freed_est
        self.last_cleanup = {"at": time.time(), "freed_bytes": freed_bytes, "removed": removed, "reason": why}
        if after is not None:
            self.usage = after
        self.log(f"disk cleanup ({why}): removed {len(removed)} object(s), freed {_mb(freed_bytes)}"
                 + (f": {', '.join(removed)}" if removed else ""))
        self._save()
        return freed_bytes

    def check(self, observed: ObservedState, desired: Desired, *, force: bool = False) -> None:
        """Above the high watermark: evict the stack's unused images (LRU), then build cache, to low."""
        now = self.clock()
        if not force and now < self.next_check:
            return
        self.next_check = now + self.check_interval
        usage = self.measure(observed, desired)
        if usage is None or usage.used <= self.policy.high_bytes(usage):
            return
        try:
            images, cache, in_use, protected = self._facts(observed, desired, unique=True)
        except (EngineError, OSError) as exc:
            self.log(f"disk cleanup skipped: {exc}", level="warning")
            return
        plan = D.plan_eviction(usage, images, in_use, protected, self.policy, build_cache=cache)
        if not plan:
            self.log(f"the disk is {usage.percent:.0f}% full (high watermark {self.policy.high}) and nothing the "
                     f"stack owns can be removed: the running release and its rollback are kept; free space on "
                     f"the device", level="warning")
            return
        self._run(plan, f"{usage.percent:.0f}% used, above the high watermark {self.policy.high}", usage)

    def boot_cleanup(self, observed: ObservedState, desired: Desired) -> None:
        """Remove what the stack left behind: stray containers, stale releases, excess build cache."""
        wanted = set(desired.stack.service_names)
        for row in self.io.owned_containers():
            labels = row.get("Labels") or {}
            service = labels.get("io.armstack.service", "") if isinstance(labels, dict) else ""
            state = row.get("State")
            # Running orphans are the planner's (graceful stop); here only what is already down.
            if (service not in wanted or service == PROBE_SERVICE) and state in ("exited", "created", "dead"):
                err = self.io.remove_container(str(row["Id"]))
                if err:
                    self.log(err, level="warning")
        usage = self.measure(observed, desired)
        try:
            images, cache, in_use, protected = self._facts(observed, desired, unique=True)
        except (EngineError, OSError) as exc:
            self.log(f"boot cleanup skipped: {exc}", level="warning")
            return
        current = self.current(observed, desired)
        stale = D.stale_releases(images, current, self.policy.keep_releases, in_use)
        dangling = set(self.io.dangling_owned(self.owned)) - protected - in_use
        stale_ids = {i.id for i in stale}
        by_id = {i.id: i for i in images}
        plan: list[D.EvictImage | D.PruneBuildCache] = [
            D.EvictImage(i.id, i.size, i.tags, reason="stale-release") for i in stale]
        plan += [D.EvictImage(i, by_id[i].size if i in by_id else 0, reason="dangling")
                 for i in sorted(dangling - stale_ids)]
        if cache > self.policy.build_cache_budget:
            plan.append(D.PruneBuildCache(cache - self.policy.build_cache_budget, keep=self.policy.build_cache_budget))
        if plan:
            self._run(plan, "boot cleanup", usage)
        # Forget pulls of images that are gone: the record must not claim a later image by id.
        present = {i.id for i in images}
        self.pulled = {k: v for k, v in self.pulled.items() if k in present}
        self.built = {k: v for k, v in self.built.items() if k in present}
        self.last_used = {k: v for k, v in self.last_used.items() if k in present}
        self._save()

    # -- admission --------------------------------------------------------------------------

    def estimate(self, action: Build | Pull, observed: ObservedState, desired: Desired) -> int:
        if isinstance(action, Pull):
            img = observed.image(action.image)
            return D.estimate_pull(img.size if img else None)
        bases = [observed.image(b) for b in base_refs(action, desired)]
        missing = sum(1 for b in bases if b is None)
        prev = observed.image(action.image)
        base_size = max((b.size for b in bases if b is not None), default=0)
        return D.estimate_build(context_bytes(action, desired), base_size=base_size, base_present=missing == 0,
                                previous_size=prev.size if prev is not None else None)

    def admit(self, actions: Sequence[Action], observed: ObservedState, desired: Desired
              ) -> tuple[list[Action], list[str]]:
        """The actions allowed to run, and a sentence for each update refused for lack of space."""
        updates = [a for a in actions if isinstance(a, Build | Pull)]
        if not updates:
            return list(actions), []
        now = self.clock()
        held = {a.service for a in updates if self._held(a, now)}
        todo = [a for a in updates if a.service not in held]
        refused_msgs: list[str] = []
        dropped: set[str] = set(held)
        if todo:
            usage = self.measure(observed, desired)
            if usage is not None:
                dropped |= self._admit_measured(todo, usage, observed, desired, refused_msgs, now)
        for a in todo:
            if a.service not in dropped and a.service in self.refused:
                self.log(f"there is room again: updating service {a.service}")
                del self.refused[a.service]
        return [a for a in actions if getattr(a, "service", None) not in dropped
                or not isinstance(a, Build | Pull)], refused_msgs

    def _held(self, a: Build | Pull, now: float) -> bool:
        r = self.refused.get(a.service)
        if r is None:
            return False
        if r.build_hash != (a.build_hash if isinstance(a, Build) else a.image):
            del self.refused[a.service]   # a different update: judge it afresh
            return False
        return now < r.next_try

    def _admit_measured(self, todo: list[Build | Pull], usage: D.DiskUsage, observed: ObservedState,
                        desired: Desired, messages: list[str], now: float) -> set[str]:
        try:
            images, cache, in_use, protected = self._facts(observed, desired, unique=True)
        except (EngineError, OSError) as exc:
            self.log(f"disk admission skipped: {exc}", level="warning")
            return set()
        room = sum(i.size for i in D.evictable(images, in_use, protected)) + cache
        dropped: set[str] = set()
        needed_total = 0
        for a in todo:
            needed = self.estimate(a, observed, desired)
            if D.fits(usage, needed_total + needed, room, self.policy):
                needed_total += needed
                continue
            dropped.add(a.service)
            what = "build the image of" if isinstance(a, Build) else "pull the image of"
            msg = (f"Not enough space to {what} service {a.service!r}: it needs about {_mb(needed)}, "
                   f"{_mb(usage.free)} is free ({usage.percent:.0f}% of {_mb(usage.usable)} used, high watermark "
                   f"{self.policy.high}) and removing every unused image of the stack would free "
                   f"{_mb(room)}. The update is refused, the current release keeps running and the update "
                   f"is retried as space frees up; free space on the device (files and images armstack does "
                   f"not own are never removed) or make the image smaller.")
            key = a.build_hash if isinstance(a, Build) else a.image
            old = self.refused.get(a.service)
            delay = RETRY_FIRST if old is None else min(RETRY_MAX, old.delay * 2)
            self.refused[a.service] = Refusal(key, msg, now + delay, delay)
            if old is None:
                self.log(msg, level="error")
                messages.append(msg)
        if needed_total and usage.used + needed_total > self.policy.low_bytes(usage):
            plan = D.plan_eviction(usage, images, in_use, protected, self.policy, build_cache=cache,
                                   needed=needed_total, force=True)
            if plan:
                self._run(plan, f"making room for an update of about {_mb(needed_total)}", usage)
        return dropped

    def next_due(self) -> float:
        """Monotonic time the supervisor should wake for a disk check or a refused update's retry."""
        return min([self.next_check, *(r.next_try for r in self.refused.values())])

    # -- results ----------------------------------------------------------------------------

    def note_results(self, results: Iterable[ActionResult], observed: ObservedState, desired: Desired) -> set[str]:
        """Record pulls; clean up after builds that ran out of space. Returns those services,
        whose updates are then retried with backoff rather than given up until the next apply."""
        out: set[str] = set()
        for r in results:
            a = r.action
            if isinstance(a, Build | Pull) and r.ok:
                # The tag now names the new image: record its id, the stack's proof of ownership.
                iid = self.io.image_id(a.image)
                if iid is not None:
                    (self.pulled if isinstance(a, Pull) else self.built)[iid] = a.service
                    self._save()
            if isinstance(a, Build | Pull) and r.ok:
                self.next_check = 0.0          # a new image: check the watermarks soon
                self.io.forget()
            if isinstance(a, Build | Pull) and isinstance(r.error, DiskFullError):
                out.add(a.service)
                # Only the layers this build made (their ids are in its result): an untagged
                # image that appeared meanwhile may be anyone's.
                left = self.io.remove_build_leftovers(r.images) if isinstance(a, Build) else []
                self.io.forget()
                key = a.build_hash if isinstance(a, Build) else a.image
                old = self.refused.get(a.service)
                delay = RETRY_FIRST if old is None else min(RETRY_MAX, old.delay * 2)
                msg = (f"The update of service {a.service!r} ran out of disk space and was aborted "
                       f"({len(left)} partial layer(s) removed); the current release keeps running. "
                       f"Free space on the device; the update is retried in {delay:.0f} s.")
                self.refused[a.service] = Refusal(key, msg, self.clock() + delay, delay)
                self.log(msg, level="error")
                self.check(observed, desired, force=True)
        return out

    # -- status -----------------------------------------------------------------------------

    def status_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"high": str(self.policy.high), "low": str(self.policy.low),
                               "keep_releases": self.policy.keep_releases, "last_cleanup": self.last_cleanup}
        u = self.usage
        if u is not None:
            out.update(used=u.used, total=u.total, free=u.free, percent=round(u.percent, 1), read_only=u.read_only,
                       high_bytes=self.policy.high_bytes(u), low_bytes=self.policy.low_bytes(u))
        else:
            out.update(used=None, total=None, free=None, percent=None)
        if self._error:
            out["error"] = self._error
        if self.refused:
            out["refused"] = {s: r.message for s, r in sorted(self.refused.items())}
        return out
