"""Containers' life cycle: create+start, start, restart, stop, remove, replace, stop a whole stack.

Every stop the runtime makes is recorded (``PurposefulStops``) before it happens, so the
container's ``die`` is not counted as a crash; an update's downtime runs from the stop of the old
container to the start of the new one (``Downtime``), across rounds when the plan splits them.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors

from runtime.actions import Create, Recreate, Remove, Restart, Start, Stop
from runtime.engine.creating import ContainerFactory
from runtime.engine.hooks import Hooks
from runtime.engine.marks import Downtime, PurposefulStops
from runtime.engine.session import MAX_WORKERS, EngineSession
from runtime.errors import EngineError
from runtime.observed import ObservedState


class Lifecycle:
    """Runs the container actions of one stack."""

    def __init__(self, session: EngineSession, factory: ContainerFactory, hooks: Hooks) -> None:
        self.session = session
        self.factory = factory
        self.hooks = hooks
        self.stops = PurposefulStops()
        self.downtime = Downtime()

    def _grace(self, service: str) -> int:
        try:
            return max(0, int(round(self.session.stack.service(service).stop_grace_period)))
        except KeyError:
            return 10

    def _make_and_start(self, service: str, image_id: str, config_hash: str) -> str:
        cid = self.factory.make(service, image_id, config_hash)
        self.session.api.start(cid)
        return cid

    def create(self, a: Create) -> tuple[str, float | None]:
        """The new container's id, and the downtime it ends (after a delete-then-download the
        Create is the second half of a replacement)."""
        cid = self.session.call(f"create and start a container for service {a.service!r}",
                                lambda: self._make_and_start(a.service, a.image_id, a.config_hash), a.service)
        self.hooks.run(a.service, cid, "post_start")
        return cid, self.downtime.end(a.service, time.monotonic())

    def start(self, a: Start) -> None:
        api = self.session.api
        self.session.call(f"start the container of service {a.service!r}", lambda: api.start(a.container_id),
                          a.service)
        self.stops.forget(a.container_id)
        self.hooks.run(a.service, a.container_id, "post_start")

    def restart(self, a: Restart) -> None:
        api = self.session.api
        self.stops.add(a.container_id)
        try:
            self.session.call(f"restart the container of service {a.service!r}",
                              lambda: api.restart(a.container_id, timeout=self._grace(a.service)), a.service)
        finally:
            self.stops.forget(a.container_id)
        self.hooks.run(a.service, a.container_id, "post_start")

    def stop_and_remove(self, service: str, container_id: str, *, remove: bool = True) -> None:
        self.hooks.run(service, container_id, "pre_stop")
        self.stops.add(container_id)
        api = self.session.api

        def run() -> None:
            try:
                api.stop(container_id, timeout=self._grace(service))
                if remove:
                    # v=False: named volumes hold data; they go only with an explicit `down -v`.
                    api.remove_container(container_id, v=False, force=True)
            except docker.errors.NotFound:
                pass

        self.session.call(f"{'remove' if remove else 'stop'} the container of service {service!r}", run, service)

    def remove(self, a: Remove) -> None:
        if a.reason == "update":
            self.downtime.mark(a.service, time.monotonic())
        self.stop_and_remove(a.service, a.container_id)

    def stop(self, a: Stop) -> None:
        if a.reason == "update":
            self.downtime.mark(a.service, time.monotonic())
        self.stop_and_remove(a.service, a.container_id, remove=False)

    def recreate(self, a: Recreate) -> tuple[str, float | None]:
        """The new container's id and the service's downtime."""
        # The new image exists already (Build/Pull ran earlier in the plan): downtime is stop→start,
        # or since the update stopped it in an earlier round (kill-then-download).
        self.downtime.mark(a.service, time.monotonic())
        try:
            self.stop_and_remove(a.service, a.container_id)
        except EngineError:
            self.downtime.end(a.service, time.monotonic())   # the old container still runs: not down
            raise
        # A failed create keeps the mark: the Create of a later round ends the same downtime.
        cid = self.session.call(f"recreate the container of service {a.service!r}",
                                lambda: self._make_and_start(a.service, a.image_id, a.config_hash), a.service)
        self.hooks.run(a.service, cid, "post_start")
        return cid, self.downtime.end(a.service, time.monotonic())

    def stop_stack(self, observed: ObservedState, *, remove: bool = False) -> list[str]:
        """Stop (optionally remove) the stack's containers, dependents first; returns error sentences.

        Services of one dependency level stop in parallel: with a 10 s grace period each, a
        serial stop of a deep stack would take minutes on a device being shut down.
        """
        from runtime.planner import stages

        candidates = [c for c in observed.containers if remove or c.running]
        errors: list[str] = []

        def one(a: Remove) -> None:
            try:
                self.stop_and_remove(a.service, a.container_id, remove=remove)
            except EngineError as exc:
                errors.append(str(exc))

        for stage in stages([Remove(c.service, c.id, reason="stop") for c in candidates], self.session.stack):
            group = [a for a in stage if isinstance(a, Remove)]
            with ThreadPoolExecutor(max_workers=max(1, min(MAX_WORKERS, len(group)))) as pool:
                list(pool.map(one, group))
        return errors
