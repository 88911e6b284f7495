"""The engine's event stream as queue items for the supervisor's loop.

A daemon thread reads ``client.events`` filtered to the stack's containers and pushes the
interesting ones (die, oom, start, destroy, health_status) into the supervisor's queue, so a
crash wakes the loop at once instead of waiting for a poll. If the engine goes away the thread
reconnects with a growing delay and, once back, pushes a ``Resync`` item: events may have been
missed, so the supervisor runs a full reconcile.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import docker

from runtime import labels as L

WATCHED = ("die", "oom", "start", "destroy", "health_status")


@dataclass(frozen=True)
class ContainerEvent:
    action: str              # die, oom, start, destroy, health_status
    container_id: str
    service: str
    exit_code: int | None = None
    health: str | None = None  # for health_status: healthy / unhealthy / starting
    time: float = 0.0          # monotonic time the event was read


@dataclass(frozen=True)
class Resync:
    """The event stream was (re)connected after a gap: events may have been missed."""

    reason: str


def parse_event(raw: dict[str, Any], now: float) -> ContainerEvent | None:
    """A ``ContainerEvent`` for a watched engine event, else None."""
    if raw.get("Type", "container") != "container":
        return None
    action = str(raw.get("Action") or raw.get("status") or "")
    health: str | None = None
    if action.startswith("health_status"):
        health = action.split(":", 1)[1].strip() if ":" in action else None
        action = "health_status"
    if action not in WATCHED:
        return None
    actor = raw.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    cid = str(actor.get("ID") or raw.get("id") or "")
    exit_code: int | None = None
    if action == "die" and "exitCode" in attrs:
        try:
            exit_code = int(attrs["exitCode"])
        except (TypeError, ValueError):
            exit_code = None
    return ContainerEvent(action, cid, str(attrs.get(L.SERVICE, "")), exit_code, health, now)


class EventWatcher:
    """Reads the stack's container events in a thread and feeds them into ``out``."""

    def __init__(self, client: docker.DockerClient, project: str, out: queue.Queue[Any],
                 *, max_delay: float = 10.0) -> None:
        self.client = client
        self.project = project
        self.out = out
        self.max_delay = max_delay
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, name=f"events-{project}", daemon=True)
        self.connected = threading.Event()

    def start(self) -> None:
        self._thread.start()
        # The first subscription must be live before the caller acts, or a crash right after
        # start-up could be missed until the periodic reconcile.
        self.connected.wait(timeout=5.0)

    def stop(self) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            # Closing a stream whose connection already died may fail in many ways; ignore.
            with contextlib.suppress(Exception):
                stream.close()
        self._thread.join(timeout=2.0)

    def _run(self) -> None:
        delay = 0.5
        first = True
        while not self._stop.is_set():
            try:
                self._stream = self.client.events(
                    decode=True, filters={"label": f"{L.STACK}={self.project}", "type": "container"}
                )
                self.connected.set()
                if not first:
                    self.out.put(Resync("the engine event stream reconnected"))
                first = False
                delay = 0.5
                for raw in self._stream:
                    if self._stop.is_set():
                        return
                    ev = parse_event(raw, time.monotonic())
                    if ev is not None:
                        self.out.put(ev)
                if self._stop.is_set():
                    return
                # The stream ended without an error: the engine closed it (e.g. it restarted).
            except Exception:  # noqa: BLE001 - any failure here means: reconnect later
                if self._stop.is_set():
                    return
                self.connected.set()  # do not hold start() hostage to a dead engine
            first = False
            if self._stop.wait(delay):
                return
            delay = min(self.max_delay, delay * 2)
