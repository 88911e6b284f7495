"""The only code that turns a stack's planner actions into engine calls (``runtime.engine`` does them).

``Executor.observe()`` reads the engine into an ``ObservedState`` (``engine.reading``);
``Executor.execute(actions)`` runs planner actions and returns one ``ActionResult`` each.
Independent Create/Start/Recreate actions of one dependency stage run in parallel; everything
else runs in order. docker-py errors never escape: each becomes an ``EngineError`` sentence
naming the service and the action.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, assert_never

import docker

from runtime.actions import (
    Action,
    ActionResult,
    Build,
    Create,
    EnsureNetwork,
    EnsureVolume,
    Pull,
    Recreate,
    Remove,
    RemoveImage,
    RemoveNetwork,
    RemoveVolume,
    Restart,
    Start,
    Stop,
    Wait,
)
from runtime.compose.model import StackSpec
from runtime.engine.creating import ContainerFactory
from runtime.engine.hooks import Hooks
from runtime.engine.images import Images
from runtime.engine.lifecycle import Lifecycle
from runtime.engine.reading import observe
from runtime.engine.resources import StackResources
from runtime.engine.session import MAX_WORKERS, BuildOutput, EngineSession
from runtime.errors import ArmstackError, EngineError
from runtime.observed import Desired, ObservedState

_PARALLEL = (Create, Start, Recreate)


class Executor:
    """Runs planner actions against one engine for one desired stack."""

    def __init__(
        self,
        client: docker.DockerClient,
        desired: Desired,
        *,
        output: BuildOutput | None = None,
        extra_labels: Mapping[str, str] | None = None,
    ) -> None:
        self.session = EngineSession(client, desired, output=output, extra_labels=extra_labels)
        self.resources = StackResources(self.session)
        self.images = Images(self.session)
        self.containers = Lifecycle(self.session, ContainerFactory(self.session, self.resources),
                                    Hooks(self.session))

    @property
    def desired(self) -> Desired:
        return self.session.desired

    @desired.setter
    def desired(self, desired: Desired) -> None:   # a reload: the same engine objects, a new stack
        self.session.desired = desired

    @property
    def stack(self) -> StackSpec:
        return self.session.stack

    # -- observing --------------------------------------------------------------------------

    def observe(self) -> ObservedState:
        return observe(self.session.api, self.stack.project)

    def expected_stop(self, container_id: str) -> bool:
        """True if the runtime itself stopped this container (its ``die`` is not a crash)."""
        return self.containers.stops.expected(container_id)

    def forget_stop(self, container_id: str) -> None:
        self.containers.stops.forget(container_id)

    # -- executing --------------------------------------------------------------------------

    def execute(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Run ``actions`` stage by stage (``planner.stages``); a failed service gets no further actions."""
        from runtime.planner import stages

        results: list[ActionResult] = []
        failed: set[str] = set()
        for stage in stages(actions, self.stack):
            todo = [a for a in stage if getattr(a, "service", None) not in failed]
            for a in stage:
                if a not in todo:
                    svc = getattr(a, "service", "?")
                    skipped = ArmstackError(f"Skipped: an earlier action for service {svc!r} failed.")
                    results.append(ActionResult(a, False, skipped))
            if len(todo) > 1 and all(isinstance(a, _PARALLEL) for a in todo):
                # One stage holds no dependency between its services: start them together.
                with ThreadPoolExecutor(max_workers=min(MAX_WORKERS, len(todo))) as pool:
                    batch = list(pool.map(self._run_one, todo))
            else:
                batch = []
                for a in todo:
                    r = self._run_one(a)
                    batch.append(r)
                    if not r.ok and r.service:
                        failed.add(r.service)
            for r in batch:
                if not r.ok and r.service:
                    failed.add(r.service)
            results.extend(batch)
        return results

    def _run_one(self, action: Action) -> ActionResult:
        t0 = time.monotonic()
        made: list[str] = []
        try:
            extra = self._dispatch_made(action, made)
        except EngineError as exc:
            return ActionResult(action, False, exc, time.monotonic() - t0, images=tuple(made))
        return ActionResult(action, True, None, time.monotonic() - t0, images=tuple(made), **extra)

    def _dispatch_made(self, action: Action, made: list[str]) -> dict[str, Any]:
        """Run one action; returns the result's extra fields. A kind missing here is a mypy error
        (``assert_never``), not a KeyError."""
        match action:
            case EnsureNetwork():
                self.resources.ensure_network(action.name)
            case EnsureVolume():
                self.resources.ensure_volume(action.name)
            case RemoveNetwork():
                self.resources.remove_network(action.name)
            case RemoveVolume():
                self.resources.remove_volume(action.name)
            case Build():
                return {"build": self.images.build(action, made)}
            case Pull():
                self.images.pull(action)
            case RemoveImage():
                self.images.remove(action)
            case Create():
                cid, downtime = self.containers.create(action)
                return {"container_id": cid, "downtime": downtime}
            case Recreate():
                cid, downtime = self.containers.recreate(action)
                return {"container_id": cid, "downtime": downtime}
            case Start():
                self.containers.start(action)
                return {"container_id": action.container_id}
            case Restart():
                self.containers.restart(action)
                return {"container_id": action.container_id}
            case Stop():
                self.containers.stop(action)
                return {"container_id": action.container_id}
            case Remove():
                self.containers.remove(action)
            case Wait():
                pass   # reported, not executed
            case _:
                assert_never(action)
        return {}

    # -- what the CLI and the supervisor call directly --------------------------------------

    def ensure_network(self, name: str) -> None:
        self.resources.ensure_network(name)

    def ensure_volume(self, name: str) -> None:
        self.resources.ensure_volume(name)

    def stop_stack(self, observed: ObservedState, *, remove: bool = False) -> list[str]:
        """Stop (optionally remove) the stack's containers, dependents first; returns error sentences."""
        return self.containers.stop_stack(observed, remove=remove)

    def remove_networks(self) -> list[str]:
        return self.resources.remove_labelled_networks()

