"""Two records the container operations keep across threads and rounds (pure, times passed in)."""

from __future__ import annotations

import threading


class PurposefulStops:
    """Containers the runtime stopped itself: their ``die`` is not a crash (``tracker.StopLedger``)."""

    def __init__(self) -> None:
        self._ids: set[str] = set()
        self._lock = threading.Lock()

    def add(self, container_id: str) -> None:
        with self._lock:
            self._ids.add(container_id)

    def expected(self, container_id: str) -> bool:
        """True if ``container_id`` (full or short) is one the runtime stopped."""
        with self._lock:
            return any(container_id.startswith(c) or c.startswith(container_id) for c in self._ids)

    def forget(self, container_id: str) -> None:
        with self._lock:
            self._ids.discard(container_id)


class Downtime:
    """When an update took each service down. The old container may stop in one round and the new
    one be created in a later one (kill/delete-then-download): the downtime spans both."""

    def __init__(self) -> None:
        self._since: dict[str, float] = {}   # service -> monotonic time it went down
        self._lock = threading.Lock()

    def mark(self, service: str, now: float) -> None:
        """The service goes down now, unless an earlier step of the same update took it down."""
        with self._lock:
            self._since.setdefault(service, now)

    def end(self, service: str, now: float) -> float | None:
        """Seconds the service was down (None if no update took it down), and forget it."""
        with self._lock:
            since = self._since.pop(service, None)
        return None if since is None else round(now - since, 3)
