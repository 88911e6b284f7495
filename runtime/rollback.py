"""Health-gated updates: probation, rollback groups and known-bad releases, as pure decisions.

After an apply replaces a service's container, the service is on *probation* for a window
(``io.armstack.probation`` label, else ``--probation`` / ``ARMSTACK_PROBATION``, default 60 s;
0 turns it off). During the window a crash, an exit or an unhealthy healthcheck fails it; at
the end of the window it passes if it is up (running, and healthy if it has a healthcheck).
A failed probation rolls back the *group* of the failed service: the services changed by the
release that are connected to it through ``depends_on``, ``network_mode``/``ipc``/``pid:
service:`` or ``volumes_from`` (``--rollback release``: every service the release changed).
A rollback sets the group's desired spec back to the previous release's, with the images its
containers ran pinned by id (:func:`rolled_back_stack`), and lets the planner converge: no
build, no pull. The failed release is remembered by the fingerprints of the group's services
(:func:`service_fingerprint`: config and build-input hashes), so the same release handed
again is refused instead of failing in a loop; any other release is applied normally.

Everything here is plain data in, plain data out: no engine, no clock, no files. The
stateful glue is :class:`runtime.releases.ReleaseKeeper`; what survives a power cut is
:class:`RollbackState` (persisted inside ``state.json`` by ``runtime.state``), and
:func:`boot_decision` says how a booting supervisor converges from it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from runtime.compose.model import ServiceSpec, StackSpec
from runtime.compose.source import StackSource
from runtime.compose.units import parse_duration
from runtime.hashing import attached_services, config_hash, digest

PROBATION_LABEL = "io.armstack.probation"
DEFAULT_PROBATION = 60.0
RollbackMode = Literal["service", "release"]
ROLLBACK_MODES: tuple[RollbackMode, ...] = ("service", "release")
MAX_BAD = 8   # known-bad releases remembered (the oldest are forgotten first)


# -- settings ---------------------------------------------------------------------------------


def parse_probation(value: str) -> float:
    """Seconds of a probation setting (``60``, ``30s``, ``2m``; ``0`` is off). ValueError if bad."""
    return parse_duration(value)


def probation_seconds(spec: ServiceSpec, default: float) -> tuple[float, str | None]:
    """The service's probation window, and a sentence if its label is invalid (then the default)."""
    raw = spec.label(PROBATION_LABEL)
    if raw is None:
        return default, None
    try:
        return parse_probation(raw), None
    except ValueError as exc:
        return default, (f"service {spec.name}: label {PROBATION_LABEL}={raw!r} is invalid ({exc}); "
                         f"using the default probation of {default:g} s")


# -- fingerprints -----------------------------------------------------------------------------


def service_fingerprint(stack: StackSpec, service: str, build_hash: str | None) -> str:
    """What identifies a service's release: its configuration hash without the image id, plus
    its build-input hash (a pulled image is named in the configuration)."""
    return digest({"config": config_hash(stack, service, "", {}), "build": build_hash or ""})


def release_fingerprint(stack: StackSpec, build_hashes: Mapping[str, str]) -> dict[str, str]:
    return {name: service_fingerprint(stack, name, build_hashes.get(name)) for name in stack.service_names}


def changed_services(previous: Mapping[str, str], current: Mapping[str, str]) -> frozenset[str]:
    """Services whose fingerprint differs from the previous release's (new services included)."""
    return frozenset(name for name, fp in current.items() if previous.get(name) != fp)


# -- probation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Probation:
    """One service on probation: since ``started_at`` (epoch seconds) for ``seconds``."""

    service: str
    started_at: float
    seconds: float
    fingerprint: str = ""

    @property
    def until(self) -> float:
        return self.started_at + self.seconds

    def to_json(self) -> dict[str, Any]:
        return {"service": self.service, "started_at": self.started_at, "seconds": self.seconds,
                "fingerprint": self.fingerprint}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Probation:
        return cls(str(data["service"]), float(data["started_at"]), float(data["seconds"]),
                   str(data.get("fingerprint") or ""))


@dataclass(frozen=True)
class ServiceFacts:
    """What is known of a service on probation now."""

    status: str | None = None           # its container's engine status; None: no container
    health: str | None = None           # None: no healthcheck
    crashes: int = 0                    # crashes since its probation began
    last_exit_code: int | None = None
    oom_killed: bool = False
    crash_looping: bool = False
    completed: bool = False             # a one-shot job that finished as its restart policy wants


@dataclass(frozen=True)
class Verdict:
    state: Literal["pending", "passed", "failed"]
    reason: str = ""


PENDING = Verdict("pending")
PASSED = Verdict("passed")


def judge(p: Probation, facts: ServiceFacts, now: float) -> Verdict:
    """Whether ``p`` passed, failed (and why) or is still running at ``now`` (epoch seconds)."""
    if facts.crash_looping:
        return Verdict("failed", f"is crash looping (last exit code {facts.last_exit_code})")
    if facts.crashes > 0:
        how = "was killed by the OOM killer" if facts.oom_killed else f"exited with code {facts.last_exit_code}"
        return Verdict("failed", f"{how} during its {p.seconds:g} s probation")
    if facts.completed:
        return PASSED
    if facts.status == "running" and facts.health == "unhealthy":
        return Verdict("failed", f"turned unhealthy during its {p.seconds:g} s probation")
    if now < p.until:
        return PENDING
    if facts.status == "running" and facts.health in (None, "healthy"):
        return PASSED
    if facts.status == "running":
        return Verdict("failed", f"was not healthy after its {p.seconds:g} s probation (health: {facts.health})")
    return Verdict("failed", f"was not running after its {p.seconds:g} s probation (state: {facts.status or 'none'})")


# -- groups -----------------------------------------------------------------------------------


def dependencies(spec: ServiceSpec) -> set[str]:
    """Services this one depends on: ``depends_on``, joined namespaces, ``volumes_from``."""
    return {d.service for d in spec.depends_on} | set(attached_services(spec))


def rollback_group(stack: StackSpec, failed: Iterable[str], candidates: Iterable[str],
                   mode: RollbackMode = "service") -> frozenset[str]:
    """The services to roll back when ``failed`` failed probation.

    ``candidates`` are the services the release changed or replaced; a service outside them
    runs the same spec in both releases and needs no rollback. In ``service`` mode the group is
    every candidate connected to a failed service through dependencies either way (within the
    candidates); in ``release`` mode it is every candidate.
    """
    failed = set(failed)
    pool = set(candidates) | failed
    if mode == "release":
        return frozenset(pool)
    names = set(stack.service_names)
    links: dict[str, set[str]] = {n: set() for n in pool}
    for spec in stack.services:
        if spec.name not in pool:
            continue
        for dep in dependencies(spec) & names & pool:
            links[spec.name].add(dep)
            links[dep].add(spec.name)
    group: set[str] = set()
    todo = [n for n in failed if n in pool]
    while todo:
        name = todo.pop()
        if name in group:
            continue
        group.add(name)
        todo.extend(links.get(name, set()) - group)
    return frozenset(group)


def rolled_back_stack(new: StackSpec, previous: StackSpec, group: Iterable[str]) -> StackSpec:
    """``new`` with the services of ``group`` as ``previous`` had them.

    A group service the previous release did not have is left out (its container goes, as an
    orphan); top-level volumes, networks, secrets and configs only the previous release
    declares are kept so the restored services find them.
    """
    group = set(group)
    old = {s.name: s for s in previous.services}
    services = tuple(old[s.name] if s.name in group else s for s in new.services
                     if s.name not in group or s.name in old)

    def union(mine: tuple[Any, ...], theirs: tuple[Any, ...]) -> tuple[Any, ...]:
        have = {x.name for x in mine}
        return mine + tuple(x for x in theirs if x.name not in have)

    return dataclasses.replace(
        new, services=services, volumes=union(new.volumes, previous.volumes),
        networks=union(new.networks, previous.networks), secrets=union(new.secrets, previous.secrets),
        configs=union(new.configs, previous.configs))


def missing_images(group: Iterable[str], images: Mapping[str, str], present: Iterable[str]) -> list[str]:
    """Group services whose previous image is unknown or gone: a rollback would have to build or pull."""
    have = set(present)
    return sorted(s for s in group if images.get(s) not in have)


# -- known-bad releases -----------------------------------------------------------------------


@dataclass(frozen=True)
class BadRelease:
    """A release that failed probation, by the fingerprints of the services rolled back."""

    fingerprints: Mapping[str, str]
    reason: str                       # "rolled back: <service> <why>"
    at: float                         # epoch seconds

    def to_json(self) -> dict[str, Any]:
        return {"fingerprints": dict(sorted(self.fingerprints.items())), "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BadRelease:
        fps = data.get("fingerprints") or {}
        return cls({str(k): str(v) for k, v in fps.items()}, str(data.get("reason") or ""), float(data["at"]))


def matches(bad: BadRelease, fingerprint: Mapping[str, str]) -> bool:
    """Whether a release (its fingerprints) is ``bad`` again: every rolled-back service the same."""
    return bool(bad.fingerprints) and all(fingerprint.get(s) == fp for s, fp in bad.fingerprints.items())


def known_bad(bad: Iterable[BadRelease], fingerprint: Mapping[str, str]) -> BadRelease | None:
    """The newest remembered bad release ``fingerprint`` repeats, or None."""
    hits = [b for b in bad if matches(b, fingerprint)]
    return max(hits, key=lambda b: b.at) if hits else None


def remember(bad: Iterable[BadRelease], new: BadRelease) -> tuple[BadRelease, ...]:
    """``bad`` plus ``new`` (replacing an entry for the same fingerprints), the newest MAX_BAD."""
    kept = [b for b in bad if dict(b.fingerprints) != dict(new.fingerprints)] + [new]
    return tuple(sorted(kept, key=lambda b: b.at)[-MAX_BAD:])


def rollback_reason(failed: str, why: str) -> str:
    return f"rolled back: {failed} {why}"


# -- persisted state --------------------------------------------------------------------------


@dataclass(frozen=True)
class PreviousRelease:
    """A release as a rollback goes back to it: how to load it, the images its containers ran."""

    # How it was loaded (files absolute); None: a state written before releases kept it, or no file.
    source: StackSource | None = None
    images: Mapping[str, str] = field(default_factory=dict)         # service -> image id
    fingerprints: Mapping[str, str] = field(default_factory=dict)   # service -> fingerprint
    # The loaded stack (runtime.compose.snapshot): the files are usually replaced in place by
    # the next release, so they cannot be read again.
    stack: Mapping[str, Any] | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.to_json() if self.source is not None else None,
                "images": dict(sorted(self.images.items())),
                "fingerprints": dict(sorted(self.fingerprints.items())), "stack": self.stack}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PreviousRelease:
        stack = data.get("stack")
        return cls(_release_source(data),
                   {str(k): str(v) for k, v in (data.get("images") or {}).items()},
                   {str(k): str(v) for k, v in (data.get("fingerprints") or {}).items()},
                   stack if isinstance(stack, Mapping) else None)


def _release_source(data: Mapping[str, Any]) -> StackSource | None:
    """The source a release was loaded from; a state from before releases kept one named its
    files and profiles apart. One that does not read is forgotten: the stack snapshot beside it
    is what a rollback uses."""
    doc = data.get("source")
    if doc is None and data.get("files"):
        doc = {"paths": list(data.get("files") or ()), "project": None, "profiles": list(data.get("profiles") or ())}
    try:
        return StackSource.from_json(doc) if doc is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RollbackRecord:
    """One rollback, as the status and the log tell it."""

    services: tuple[str, ...]
    failed: str
    reason: str       # "rolled back: <service> <why>"
    at: float         # epoch seconds

    def to_json(self) -> dict[str, Any]:
        return {"services": list(self.services), "failed": self.failed, "reason": self.reason, "at": self.at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RollbackRecord:
        return cls(tuple(str(s) for s in data.get("services") or ()), str(data.get("failed") or ""),
                   str(data.get("reason") or ""), float(data["at"]))


@dataclass(frozen=True)
class RollbackState:
    """What survives a power cut: the release running (``current``, recorded once an apply
    settled) and the one before it (``previous``, what a rollback goes back to), probation in
    progress, the services running the previous release after a rollback, known-bad releases
    and the rollback counts.

    ``rolled_back`` is written *before* the rollback acts: a power cut in the middle of it
    finishes the rollback at the next boot, never leaves half the group on each release.
    """

    previous: PreviousRelease | None = None
    current: PreviousRelease | None = None
    probation: tuple[Probation, ...] = ()
    rolled_back: tuple[str, ...] = ()
    bad: tuple[BadRelease, ...] = ()
    last: RollbackRecord | None = None
    totals: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "previous": self.previous.to_json() if self.previous is not None else None,
            "current": self.current.to_json() if self.current is not None else None,
            "probation": [p.to_json() for p in self.probation],
            "rolled_back": list(self.rolled_back),
            "bad": [b.to_json() for b in self.bad],
            "last": self.last.to_json() if self.last is not None else None,
            "totals": dict(sorted(self.totals.items())),
        }

    @classmethod
    def from_json(cls, data: object) -> RollbackState:
        """The state in ``data``; anything malformed reads as no rollback state (never raises):
        it only costs a probation, while refusing to boot would cost the stack."""
        if not isinstance(data, Mapping):
            return cls()
        try:
            prev, cur = data.get("previous"), data.get("current")
            last = data.get("last")
            totals = data.get("totals") or {}
            return cls(
                previous=PreviousRelease.from_json(prev) if isinstance(prev, Mapping) else None,
                current=PreviousRelease.from_json(cur) if isinstance(cur, Mapping) else None,
                probation=tuple(Probation.from_json(p) for p in data.get("probation") or ()),
                rolled_back=tuple(str(s) for s in data.get("rolled_back") or ()),
                bad=tuple(BadRelease.from_json(b) for b in data.get("bad") or ()),
                last=RollbackRecord.from_json(last) if isinstance(last, Mapping) else None,
                totals={str(k): int(v) for k, v in totals.items() if isinstance(v, int) and not isinstance(v, bool)},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return cls()


# -- boot -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BootDecision:
    """How a booting supervisor treats the file it was given, after a restart or a power cut.

    ``kind``: ``as-given`` (apply it; probation state is dropped), ``resume`` (the release on
    probation when the power went: probation of ``services`` starts again from now) or
    ``rolled-back`` (the release was rolled back, or was being rolled back: apply it with
    ``services`` from the previous release).
    """

    kind: Literal["as-given", "resume", "rolled-back"]
    services: tuple[str, ...] = ()
    reason: str = ""


def boot_decision(state: RollbackState, fingerprint: Mapping[str, str]) -> BootDecision:
    bad = known_bad(state.bad, fingerprint)
    if bad is not None and state.previous is not None:
        group = tuple(sorted(set(bad.fingerprints) & set(fingerprint)))
        return BootDecision("rolled-back", group, bad.reason)
    live = tuple(p.service for p in state.probation if fingerprint.get(p.service) == p.fingerprint)
    if live and state.previous is not None:
        return BootDecision("resume", tuple(sorted(live)))
    return BootDecision("as-given")
