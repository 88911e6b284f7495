"""The chaos soak's schedule: which fault hits what, in which order, from a seed. Pure.

A schedule is a list of :class:`ChaosStep` drawn from a catalogue of :class:`FaultKind` with a
seeded :class:`random.Random`: the same seed, stack and catalogue give the same schedule, so a
failing soak can be run again step for step. Whether a kind can run at all on a device (its
capability) and on a stack (a service with a ``mem_limit`` for ``oom``) is decided here too, so
a schedule never holds a step the run would have to skip.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["service", "device", "pair"]
# What the engine is expected to restart after the fault: nothing, the service hit, everything, or
# "maybe": the service hit may restart or not (a starved service may fail its healthcheck).
Restarts = Literal["none", "target", "all", "maybe"]


@dataclass(frozen=True)
class FaultKind:
    """One entry of the catalogue: a fault the soak may draw."""

    name: str
    scope: Scope
    restarts: Restarts
    bound: float                          # seconds to converge after the fault, before the arch factor
    weight: int = 1                       # relative chance of being drawn
    capability: str | None = None         # a device capability the fault needs (harness.protocol)
    needs: str | None = None              # a stack trait the target needs ("mem_limit", "healthcheck")
    hold: tuple[float, float] = (0.0, 0.0)  # seconds the fault stays before it is healed (min, max)
    values: tuple[float, float] = (0.0, 0.0)  # the fault's one parameter, drawn (e.g. a clock jump's seconds)


@dataclass(frozen=True)
class ChaosStep:
    """One fault of a schedule."""

    index: int
    fault: str
    target: tuple[str, ...] = ()          # the service(s) hit; () for a device fault
    hold: float = 0.0
    pause: float = 0.0                    # seconds of plain workload before the fault
    value: float = 0.0                    # the fault's parameter, where it has one

    def describe(self) -> str:
        on = f" {'/'.join(self.target)}" if self.target else ""
        value = f" {self.value:+g}" if self.value else ""
        held = f" for {self.hold:.1f}s" if self.hold else ""
        return f"#{self.index} {self.fault}{on}{value}{held}"


@dataclass(frozen=True)
class StackTraits:
    """What the schedule needs to know about a stack: its services and which have which trait."""

    services: tuple[str, ...]
    traits: Mapping[str, frozenset[str]] = field(default_factory=dict)   # service -> {"mem_limit", ...}

    def having(self, trait: str | None) -> tuple[str, ...]:
        if trait is None:
            return self.services
        return tuple(s for s in self.services if trait in self.traits.get(s, frozenset()))


class PlanError(ValueError):
    """A schedule that cannot be drawn: no fault fits the device and the stack."""


def usable(catalogue: Iterable[FaultKind], capabilities: Iterable[str], stack: StackTraits,
           only: Sequence[str] = ()) -> list[FaultKind]:
    """The kinds the device can inject and the stack has a target for (restricted to ``only`` if given)."""
    caps = set(capabilities)
    known = {k.name for k in catalogue}
    unknown = [n for n in only if n not in known]
    if unknown:
        raise PlanError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(sorted(known))}")
    kinds = []
    for k in catalogue:
        if only and k.name not in only:
            continue
        if k.capability is not None and k.capability not in caps:
            continue
        targets = stack.having(k.needs)
        if k.scope == "service" and not targets or k.scope == "pair" and len(targets) < 2:
            continue
        kinds.append(k)
    return kinds


def plan(seed: int, count: int, kinds: Sequence[FaultKind], stack: StackTraits,
         pause: tuple[float, float] = (1.0, 4.0)) -> list[ChaosStep]:
    """``count`` steps drawn from ``kinds`` by ``seed``: the same arguments, the same schedule."""
    if count < 0:
        raise PlanError(f"a soak needs a non-negative number of faults, not {count}")
    if count and not kinds:
        raise PlanError("no fault fits this device and stack")
    rng = random.Random(seed)
    ordered = sorted(kinds, key=lambda k: k.name)   # the catalogue's order must not change the schedule
    steps = []
    for i in range(count):
        kind = rng.choices(ordered, weights=[k.weight for k in ordered])[0]
        targets = sorted(stack.having(kind.needs))
        target: tuple[str, ...] = ()
        if kind.scope == "service":
            target = (rng.choice(targets),)
        elif kind.scope == "pair":
            target = tuple(sorted(rng.sample(targets, 2)))
        hold = round(rng.uniform(*kind.hold), 1) if kind.hold != (0.0, 0.0) else 0.0
        value = round(rng.uniform(*kind.values)) if kind.values != (0.0, 0.0) else 0.0
        steps.append(ChaosStep(i + 1, kind.name, target, hold, round(rng.uniform(*pause), 1), value))
    return steps
