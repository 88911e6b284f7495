"""How fast the supervisor reacts to a crash: from reading a ``die`` event to issuing the restart.

Pure: the loop hands in the monotonic times. ``event_to_action`` is shown per service in the
status; the restart marks are what latency measurements (bench, e2e) read.
"""

from __future__ import annotations


class ReactionTimes:
    def __init__(self) -> None:
        self._marks: list[tuple[str, float]] = []   # (service, monotonic) of each crash restart
        self._die_read: dict[str, float] = {}        # service -> monotonic time its die event was read
        self._event_to_action: dict[str, float] = {}  # service -> seconds from die event to restart

    def die_read(self, service: str, at: float) -> None:
        """A ``die`` event of ``service`` was read at ``at`` (the first one of a burst counts)."""
        self._die_read.setdefault(service, at)

    def round_done(self) -> None:
        """A reconcile consumed the events read: a restart held back by backoff is not a reaction."""
        self._die_read.clear()

    def restarted(self, service: str, now: float, seconds: float) -> None:
        """A Start/Restart of ``service`` returned at ``now`` after taking ``seconds``."""
        self._marks.append((service, now))
        if service in self._die_read:
            issued = now - seconds   # when the start call went out, not when it returned
            self._event_to_action[service] = max(0.0, issued - self._die_read.pop(service))

    def forget(self) -> None:
        """Back to just deployed (``apply --reset``): no restart, no reaction recorded."""
        self._marks.clear()
        self._die_read.clear()
        self._event_to_action.clear()

    @property
    def marks(self) -> list[tuple[str, float]]:
        return list(self._marks)

    def event_to_action(self, service: str) -> float | None:
        return self._event_to_action.get(service)
