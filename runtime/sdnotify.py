"""systemd's notify protocol (``Type=notify``, ``WatchdogSec=``), with the standard library only.

When systemd starts the supervisor with ``NOTIFY_SOCKET`` set, the notifier sends

* ``READY=1`` once the first apply finished (so ``systemctl start`` returns when the stack
  is up, or has failed to come up);
* ``WATCHDOG=1`` every half ``WATCHDOG_USEC`` while :func:`runtime.metrics.health` says the
  stack is healthy (and has been for a moment: see ``SETTLE``). A crash-looping service or a
  failed apply stops the pings; after ``WatchdogSec`` systemd kills the supervisor, which
  ``Restart=`` starts again (and ``StartLimitAction=reboot`` can reboot a device that keeps
  failing);
* ``STATUS=...`` when the verdict changes, shown by ``systemctl status``;
* ``STOPPING=1`` when the supervisor stops.

The protocol is one AF_UNIX datagram per message to the socket path in ``NOTIFY_SOCKET``
(a leading ``@`` names an abstract socket).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from runtime import metrics
from runtime.statusboard import StatusBoard

Log = Callable[..., None]
SETTLE = 3.0   # seconds the stack must have been healthy before a watchdog ping (at most)


def notify(message: str, environ: Mapping[str, str]) -> bool:
    """Send ``message`` to systemd; False if ``NOTIFY_SOCKET`` is unset or the send failed."""
    target = environ.get("NOTIFY_SOCKET", "")
    if not target:
        return False
    address = "\0" + target[1:] if target.startswith("@") else target
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message.encode("utf-8"), address)
    except OSError:
        return False
    return True


def watchdog_interval(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WATCHDOG_USEC``), or None if none are wanted.

    ``WATCHDOG_PID``, when set, names the process systemd expects the pings from: a child that
    inherited the environment must not ping for its parent.
    """
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    if usec <= 0:
        return None
    wanted_pid = environ.get("WATCHDOG_PID", "")
    if wanted_pid and wanted_pid != str(os.getpid() if pid is None else pid):
        return None
    return usec / 2 / 1_000_000


class Notifier:
    """Tells systemd about readiness and health from what the supervisor publishes, on a thread."""

    def __init__(self, board: StatusBoard, environ: Mapping[str, str], *, log: Log | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.environ = dict(environ)
        self.interval = watchdog_interval(self.environ)
        # A crash-looping service runs for an instant after each restart, and the status taken
        # right after the start shows it running. Pinging only once the verdict has held this
        # long keeps those blinks from feeding the watchdog.
        self.settle = 0.0 if self.interval is None else min(self.interval / 2, SETTLE)
        self.log: Log = log or (lambda message, **kw: None)
        self.clock = clock
        self.sent_ready = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._status = ""
        self._failing = False

    @property
    def enabled(self) -> bool:
        return bool(self.environ.get("NOTIFY_SOCKET"))

    def start(self) -> None:
        if not self.enabled:
            return
        self._thread = threading.Thread(target=self._run, name="armstack-sd-notify", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop = True
        self.board.wake()
        self._thread.join(timeout=5.0)
        self._thread = None
        notify("STOPPING=1", self.environ)

    def _run(self) -> None:
        version = -1
        next_ping = self.clock()
        healthy_since: float | None = None
        while not self._stop:
            now = self.clock()
            doc = self.board.current()
            verdict = metrics.health(doc)
            ready = bool(doc and (doc.get("supervisor") or {}).get("ready"))
            if ready and not self.sent_ready:
                self.sent_ready = self._send("READY=1")
            status = "STATUS=" + ("every service is up" if verdict.ok else "unhealthy: " + verdict.reason)
            if status != self._status and self._send(status):
                self._status = status
            healthy_since = (healthy_since if healthy_since is not None else now) if verdict.ok else None
            timeout = None   # without a watchdog, or while unhealthy: wake on the next status
            if self.interval is not None and healthy_since is not None:
                due = max(next_ping, healthy_since + self.settle)
                if now >= due:
                    self._send("WATCHDOG=1")
                    due = next_ping = now + self.interval
                timeout = due - now
            version = self.board.wait_newer(version, timeout)

    def _send(self, message: str) -> bool:
        ok = notify(message, self.environ)
        if not ok and not self._failing:   # once per outage, not at every ping
            self.log(f"could not send {message.split('=')[0]} to systemd at {self.environ.get('NOTIFY_SOCKET')}",
                     level="warning")
        self._failing = not ok
        return ok
