"""The supervisor's latest status document, handed safely to other threads.

The supervisor's loop publishes a finished document after every reconcile; the HTTP endpoint
and the systemd notifier only ever read published documents. They never call into the
supervisor's state while its loop mutates it, and a slow reader never holds the loop up.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class StatusBoard:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._doc: Mapping[str, Any] | None = None
        self._version = 0
        self._last_success_at: float | None = None

    def publish(self, doc: Mapping[str, Any]) -> None:
        """Make ``doc`` the current status (the caller must not change it afterwards)."""
        last = doc.get("last_apply") or {}
        finished = last.get("finished_at")
        with self._cond:
            self._doc = doc
            self._version += 1
            if last.get("ok") and isinstance(finished, int | float):
                # The status keeps only the last apply; a failed one must not hide the last success.
                self._last_success_at = max(self._last_success_at or 0.0, float(finished))
            self._cond.notify_all()

    def report_engine_error(self, message: str) -> None:
        """Mark the current status as taken before the engine failed: until the next publish,
        the stack counts as unhealthy (the last document would otherwise say all is well)."""
        with self._cond:
            if self._doc is None:
                return   # nothing published yet: unhealthy anyway
            self._doc = {**self._doc, "engine_error": message}
            self._version += 1
            self._cond.notify_all()

    def current(self) -> Mapping[str, Any] | None:
        with self._cond:
            return self._doc

    @property
    def last_success_at(self) -> float | None:
        with self._cond:
            return self._last_success_at

    @property
    def version(self) -> int:
        with self._cond:
            return self._version

    def wait_newer(self, version: int, timeout: float | None) -> int:
        """Block until a document newer than ``version`` is published or ``timeout`` passes;
        returns the current version."""
        with self._cond:
            self._cond.wait_for(lambda: self._version > version, timeout)
            return self._version

    def wake(self) -> None:
        """Wake every waiter (used to stop reader threads); the document stays the same."""
        with self._cond:
            self._version += 1
            self._cond.notify_all()
