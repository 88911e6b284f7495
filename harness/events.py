"""Engine events recorded live, from before an action until it is over.

History queries (``since``/``until``) are not enough to confirm what an action did: the
engine keeps only its last 256 events, and healthchecks alone add four per check (exec
create/start/die, health_status), so on a busy engine the event wanted may already be gone.
"""

from __future__ import annotations

import contextlib
import threading
from types import TracebackType
from typing import Any


class EventRecorder:
    """Records the events matching ``filters`` (the engine API's) from construction until :meth:`stop`.

    The engine subscribes before it answers the request, so nothing that happens after the
    constructor returns is missed. Use it as a context manager, or call ``stop()``.
    """

    def __init__(self, client: Any, filters: dict[str, Any]):
        self.events: list[dict[str, Any]] = []
        api = getattr(client, "api", client)   # a DockerClient or its low-level APIClient
        self._stream = api.events(decode=True, filters=filters)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(Exception):  # the stream raises when stop() closes it
            for ev in self._stream:
                self.events.append(ev)

    def actions(self) -> list[str]:
        """The ``Action`` of every event so far, in order (e.g. ``"oom"``, ``"health_status: unhealthy"``)."""
        return [str(ev.get("Action")) for ev in list(self.events)]

    def stop(self) -> list[dict[str, Any]]:
        self._stream.close()
        self._thread.join(timeout=5)
        return list(self.events)

    def __enter__(self) -> EventRecorder:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
