"""systemd notify protocol against a temporary datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.sdnotify import Notifier, notify, watchdog_interval
from runtime.statusboard import StatusBoard


def status(*, ready: bool = True, state: str = "running") -> dict[str, Any]:
    return {"generation": 1, "supervisor": {"ready": ready}, "last_apply": {"generation": 1, "ok": True},
            "services": {"web": {"state": state}}}


@pytest.fixture
def systemd(tmp_path: Path) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    try:
        yield sock
    finally:
        sock.close()


def receive(sock: socket.socket, until: str) -> list[str]:
    """Messages up to and including the first that starts with ``until`` (a timeout fails the test)."""
    got: list[str] = []
    while True:
        got.append(sock.recv(4096).decode())
        if got[-1].startswith(until):
            return got


def pending(sock: socket.socket) -> list[str]:
    sock.setblocking(False)
    out = []
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        return out
    finally:
        sock.setblocking(True)
        sock.settimeout(5)


def test_notify_sends_one_datagram(systemd: socket.socket) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": systemd.getsockname()})
    assert systemd.recv(100) == b"READY=1"


def test_notify_without_socket_or_to_nobody_is_false(tmp_path: Path) -> None:
    assert not notify("READY=1", {})
    assert not notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"armstack-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(100) == b"WATCHDOG=1"


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": str(os.getpid())}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}, pid=2) is None   # not for us
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None


def test_ready_once_after_the_first_apply_and_pings_only_while_healthy(systemd: socket.socket) -> None:
    board = StatusBoard()
    env = {"NOTIFY_SOCKET": systemd.getsockname(), "WATCHDOG_USEC": "100000"}   # ping every 0.05 s
    n = Notifier(board, env)
    board.publish(status(ready=False))
    n.start()
    try:
        assert receive(systemd, "STATUS=") == ["STATUS=unhealthy: generation 1 is still being applied for the "
                                               "first time"]
        assert pending(systemd) == []   # not ready: no READY, no ping
        board.publish(status())
        got = receive(systemd, "WATCHDOG=1")
        assert got[:2] == ["READY=1", "STATUS=every service is up"]
        receive(systemd, "WATCHDOG=1")   # and again, half the watchdog time later

        board.publish(status(state="crash-loop"))
        receive(systemd, "STATUS=unhealthy: service web is crash looping")
        pending(systemd)   # a ping that raced the new status
        with pytest.raises(TimeoutError):
            systemd.settimeout(0.3)   # six intervals: the pings stopped
            systemd.recv(100)
        systemd.settimeout(5)

        board.publish(status())
        assert receive(systemd, "WATCHDOG=1")[0] == "STATUS=every service is up"
    finally:
        n.stop()
    rest = pending(systemd)
    assert rest[-1] == "STOPPING=1" and "READY=1" not in rest   # READY went out once


def test_without_notify_socket_nothing_runs() -> None:
    n = Notifier(StatusBoard(), {})
    n.start()
    assert not n.enabled and n._thread is None
    n.stop()


def test_a_blink_of_health_inside_a_crash_loop_feeds_no_ping(systemd: socket.socket) -> None:
    board = StatusBoard()
    env = {"NOTIFY_SOCKET": systemd.getsockname(), "WATCHDOG_USEC": "400000"}   # ping every 0.2 s
    n = Notifier(board, env)
    assert n.settle == 0.1
    board.publish(status(state="crash-loop"))
    n.start()
    try:
        assert receive(systemd, "STATUS=unhealthy")[0] == "READY=1"
        # The status taken right after a restart shows the service running; its exit follows.
        board.publish(status())
        got = receive(systemd, "STATUS=every service is up")   # the notifier saw it healthy
        board.publish(status(state="crash-loop"))
        systemd.settimeout(0.5)
        with pytest.raises(TimeoutError):
            while True:
                got.append(systemd.recv(100).decode())
        assert "WATCHDOG=1" not in got
    finally:
        n.stop()
