"""Where the supervisor's status goes besides ``status.json``: the watchdog and metrics readers.

The supervisor's loop hands every finished status document to :meth:`Publisher.publish`.
Two readers take it from the :class:`~runtime.statusboard.StatusBoard` on their own threads:
the HTTP endpoint (``/healthz``, ``/status``, ``/metrics``; :mod:`runtime.endpoint`), when an
address to listen on was given, and the systemd notifier (``READY=1``, ``WATCHDOG=1``;
:mod:`runtime.sdnotify`), when systemd passed a notify socket. Neither calls back into the
supervisor, so the loop owns its state alone.

The supervisor starts the readers under the project's lock (a second supervisor never takes
over the first one's socket) and stops them when it stops; ``armstack apply`` without a
supervisor starts none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from runtime.endpoint import Endpoint, ListenAddress
from runtime.sdnotify import Notifier
from runtime.statusboard import StatusBoard

Log = Callable[..., None]


class Publisher:
    """The status board and the readers of it that a running supervisor serves."""

    def __init__(self, listen: ListenAddress | None, systemd: Mapping[str, str], log: Log) -> None:
        self.board = StatusBoard()
        self.listen = listen        # None: no endpoint (the default)
        self.systemd = systemd      # NOTIFY_SOCKET and the watchdog variables, as systemd set them
        self.log = log
        self.endpoint: Endpoint | None = None
        self.notifier: Notifier | None = None

    def start(self) -> None:
        """Serve the endpoint (if asked for) and start the notifier; EndpointError if the
        address cannot be listened on (then nothing runs)."""
        if self.listen is not None:
            endpoint = Endpoint(self.listen, self.board.current,
                                last_success_at=lambda: self.board.last_success_at, log=self.log)
            endpoint.start()
            self.endpoint = endpoint
            self.log(f"serving /healthz, /status and /metrics on {endpoint.bound}")
        self.notifier = Notifier(self.board, self.systemd, log=self.log)
        self.notifier.start()

    def stop(self) -> None:
        """Stop the readers (systemd hears ``STOPPING=1``, the socket is closed)."""
        if self.notifier is not None:
            self.notifier.stop()
            self.notifier = None
        if self.endpoint is not None:
            self.endpoint.stop()
            self.endpoint = None

    def publish(self, doc: Mapping[str, Any]) -> None:
        """Make ``doc`` what the readers see (the caller must not change it afterwards)."""
        self.board.publish(doc)

    def engine_failed(self, message: str) -> None:
        """The engine failed a reconcile: the stack counts as unhealthy until the next publish."""
        self.board.report_engine_error(message)
