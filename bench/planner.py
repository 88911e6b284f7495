"""Planner time for 10 / 100 / 1000 services (pure: no device, no engine)."""

from __future__ import annotations

import time

from bench.common import Result
from runtime.compose.model import Dependency, RestartPolicy, ServiceSpec, StackSpec
from runtime.hashing import config_hash
from runtime.observed import Desired, ObservedContainer, ObservedImage, ObservedState, Policy
from runtime.planner import plan


def _stack(n: int) -> tuple[Desired, ObservedState]:
    # A chain-and-fan shape: every tenth service depends on the previous tenth, the rest on it.
    services = []
    for i in range(n):
        deps = () if i == 0 else (Dependency(f"s{(i // 10) * 10 if i % 10 else i - 10}"),)
        services.append(ServiceSpec(name=f"s{i}", image=f"img{i % 7}:1", depends_on=deps,
                                    restart=RestartPolicy("always"), networks=("default",)))
    stack = StackSpec(project="bench", services=tuple(services))
    images = tuple(ObservedImage(id=f"sha256:{k}", tags=(f"img{k}:1",)) for k in range(7))
    return Desired(stack), ObservedState(images=images, networks=frozenset({"bench_default"}))


def _converged(desired: Desired, observed: ObservedState) -> ObservedState:
    """Every service running with its current config: what a periodic reconcile usually sees."""
    stack = desired.stack
    containers = []
    for s in stack.services:
        image = observed.image(stack.image_ref(s.name))
        assert image is not None
        containers.append(ObservedContainer(
            id=f"c{s.name}", name=f"bench-{s.name}-1", service=s.name, image_id=image.id, status="running",
            config_hash=config_hash(stack, s.name, image.id, {})))
    return ObservedState(containers=tuple(containers), images=observed.images, networks=observed.networks)


def run(quick: bool = False) -> Result:
    result = Result("planner")
    for n in (10, 100, 1000):
        desired, observed = _stack(n)
        policy = Policy(now=1.0)
        reps = 3 if n == 1000 and quick else 5
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            plan(desired, observed, policy)
            times.append(time.perf_counter() - t0)
        result.row(f"plan() for {n} services, nothing running yet", min(times) * 1000, "ms")
        converged = _converged(desired, observed)
        steady = []
        for _ in range(reps):
            t0 = time.perf_counter()
            assert plan(desired, converged, policy) == []
            steady.append(time.perf_counter() - t0)
        result.row(f"plan() for {n} services, converged (periodic reconcile)", min(steady) * 1000, "ms")
        result.series[f"{n} services"] = times + steady
    return result
