"""The watchdog and metrics endpoint: ``GET /healthz``, ``/status``, ``/metrics`` over HTTP.

``armstack up --listen unix:///run/armstack.sock`` (or ``tcp://127.0.0.1:9100``; off by
default) serves:

* ``/healthz``: 200 ``ok`` when :func:`runtime.metrics.health` says so, else 503 and the
  reason (for a hardware watchdog, or a probe);
* ``/status``: the status document as JSON (what ``status.json`` holds);
* ``/metrics``: the Prometheus text format (:func:`runtime.metrics.render`).

The server reads what the supervisor published (a callable passed in, usually
:meth:`runtime.statusboard.StatusBoard.current`), runs on its own threads and never calls
back into the supervisor: a slow or failing request cannot hold up or crash the loop. A
handler that raises answers 500 and the error is logged.

A unix socket is created with mode 0600 (only the supervisor's user may connect). Its
directory must belong to that user or root and must not be writable by others without the
sticky bit, or someone else could swap the socket. A leftover socket of an earlier run is
removed only if it is a socket nobody answers on. TCP listens on exactly the address given;
nothing listens unless asked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from runtime import metrics
from runtime.errors import ArmstackError

LISTEN_ENV = "ARMSTACK_LISTEN"
REQUEST_TIMEOUT = 5.0   # seconds a client may take to send its request

Log = Callable[..., None]
StatusSource = Callable[[], Mapping[str, Any] | None]


class EndpointError(ArmstackError):
    """The endpoint's address is invalid or cannot be listened on."""


@dataclass(frozen=True)
class ListenAddress:
    scheme: str            # "unix" or "tcp"
    path: str = ""         # unix
    host: str = ""         # tcp
    port: int = 0          # tcp; 0 picks a free port

    def __str__(self) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"


def parse_listen(url: str) -> ListenAddress:
    """``unix:///absolute/path`` or ``tcp://HOST:PORT``; EndpointError saying what is wrong."""
    hint = "use unix:///run/armstack.sock or tcp://127.0.0.1:PORT"
    text = url.strip()
    if text.startswith("unix://"):
        path = text[len("unix://"):]
        if not path.startswith("/"):
            raise EndpointError(f"The listen address {url!r} needs an absolute socket path; {hint}.")
        if path.endswith("/"):
            raise EndpointError(f"The listen address {url!r} names a directory, not a socket; {hint}.")
        if len(os.fsencode(path)) > 107:   # sun_path holds 108 bytes with the terminating NUL
            raise EndpointError(f"The socket path in {url!r} is longer than a unix socket allows (107 bytes); "
                                "choose a shorter one.")
        return ListenAddress("unix", path=path)
    if text.startswith("tcp://"):
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None or parts.path not in ("", "/") or parts.query or parts.username:
            raise EndpointError(f"The listen address {url!r} needs a host and a port (0-65535) and nothing else; "
                                f"{hint}.")
        return ListenAddress("tcp", host=parts.hostname, port=port)
    raise EndpointError(f"The listen address {url!r} is neither unix:// nor tcp://; {hint}.")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "armstack"
    timeout = REQUEST_TIMEOUT   # a client that never sends its request gives its thread back

    def do_GET(self) -> None:  # noqa: N802 - the name http.server dispatches on
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                verdict = metrics.health(self.server.source())
                self._send(200 if verdict.ok else 503, "text/plain; charset=utf-8", verdict.reason + "\n")
            elif path == "/status":
                doc = self.server.source()
                if doc is None:
                    self._send(503, "application/json", json.dumps({"error": "no status published yet"}) + "\n")
                else:
                    self._send(200, "application/json", json.dumps(doc, sort_keys=True) + "\n")
            elif path == "/metrics":
                text = metrics.render(self.server.source(), last_success_at=self.server.last_success_at())
                self._send(200, metrics.CONTENT_TYPE, text)
            else:
                self._send(404, "text/plain; charset=utf-8", "not found: try /healthz, /status or /metrics\n")
        except Exception as exc:  # noqa: BLE001 - any bug here must answer 500, never reach the supervisor
            self.server.log(f"the endpoint failed to answer GET {path}: {type(exc).__name__}: {exc}", level="error")
            with contextlib.suppress(OSError):
                self._send(500, "text/plain; charset=utf-8", "internal error; see the supervisor's log\n")

    def _send(self, code: int, content_type: str, body: str) -> None:
        data = body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def address_string(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else "unix"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass   # a watchdog asks every few seconds: an access log would flood the device's log


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Set after construction (the base constructor binds); the handler reads them.
    source: StatusSource
    last_success_at: Callable[[], float | None]
    log: Log


class _UnixServer(_Server):
    address_family = socket.AF_UNIX

    def server_bind(self) -> None:
        # HTTPServer.server_bind reads (host, port) from the address; a unix path has neither.
        old = os.umask(0o077)   # the socket is born 0600: no window in which others may connect
        try:
            socketserver.TCPServer.server_bind(self)
        finally:
            os.umask(old)
        path = cast(str, self.server_address)   # typeshed types the address as (host, port) only
        os.chmod(path, 0o600)
        self.server_name = path
        self.server_port = 0


class _Server6(_Server):
    address_family = socket.AF_INET6


class Endpoint:
    """The HTTP server on its own thread; :meth:`start` binds (EndpointError), :meth:`stop` closes."""

    def __init__(self, address: ListenAddress, source: StatusSource, *,
                 last_success_at: Callable[[], float | None] = lambda: None, log: Log | None = None) -> None:
        self.address = address
        self.source = source
        self.last_success_at = last_success_at
        self.log: Log = log or (lambda message, **kw: None)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def bound(self) -> ListenAddress:
        """The address actually listened on (the port chosen when 0 was asked for)."""
        if self._server is not None and self.address.scheme == "tcp":
            host, port = self._server.server_address[:2]
            return ListenAddress("tcp", host=str(host), port=int(port))
        return self.address

    def start(self) -> None:
        server = self._bind()
        server.source = self.source
        server.last_success_at = self.last_success_at
        server.log = self.log
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.5},
                                        name="armstack-endpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        if self.address.scheme == "unix":
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(os.lstat(self.address.path).st_mode):
                    os.unlink(self.address.path)

    def _bind(self) -> _Server:
        a = self.address
        if a.scheme == "unix":
            _prepare_unix_path(Path(a.path))
            try:
                return _UnixServer(cast(Any, a.path), _Handler)
            except OSError as exc:
                raise EndpointError(f"Cannot listen on {a}: {exc.strerror or exc}.") from exc
        server_class = _Server6 if ":" in a.host else _Server
        try:
            return server_class((a.host, a.port), _Handler)
        except OSError as exc:
            raise EndpointError(f"Cannot listen on {a}: {exc.strerror or exc}. Is another process using it? "
                                "Choose another port with --listen.") from exc


def _prepare_unix_path(path: Path) -> None:
    """Check the socket's directory and clear a stale socket; EndpointError if unsafe or in use."""
    parent = path.parent
    try:
        st = os.stat(parent)
    except OSError as exc:
        raise EndpointError(f"Cannot listen on unix://{path}: its directory {parent} is missing or unreadable "
                            f"({exc.strerror}). Create it first.") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise EndpointError(f"Cannot listen on unix://{path}: {parent} is not a directory.")
    if st.st_uid not in (os.geteuid(), 0):
        raise EndpointError(f"Cannot listen on unix://{path}: {parent} belongs to another user (uid {st.st_uid}); "
                            "put the socket in a directory owned by the supervisor's user or root.")
    if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
        raise EndpointError(f"Cannot listen on unix://{path}: anyone may write {parent} and it has no sticky bit, "
                            "so anyone could replace the socket; choose another directory.")
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(existing.st_mode):
        raise EndpointError(f"Cannot listen on unix://{path}: a file that is not a socket is in the way. "
                            "Remove it or choose another path.")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        os.unlink(path)   # nobody answers: the leftover of an earlier run
        return
    finally:
        probe.close()
    raise EndpointError(f"Cannot listen on unix://{path}: another process is listening on it (another "
                        "supervisor?). Choose another path with --listen.")
