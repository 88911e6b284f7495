"""The HTTP endpoint on a temporary unix socket or loopback port, fed plain status documents."""

from __future__ import annotations

import argparse
import http.client
import os
import socket
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, cast

import pytest

from runtime import cli
from runtime.endpoint import Endpoint, EndpointError, ListenAddress, parse_listen
from runtime.errors import EngineError
from runtime.metrics import health
from runtime.publish import Publisher
from runtime.settings import RuntimeSettings, SettingsError
from runtime.statusboard import StatusBoard
from runtime.supervisor import Supervisor

HEALTHY: dict[str, Any] = {
    "project": "demo", "generation": 1, "supervisor": {"pid": 1, "started_at": 0.0, "ready": True},
    "last_apply": {"generation": 1, "ok": True, "error": None, "finished_at": 5.0, "report": {}},
    "services": {"web": {"state": "running", "restarts": 0}}, "disk": {},
}


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=5)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.path)


def get(address: ListenAddress, path: str) -> tuple[int, str, str]:
    conn: http.client.HTTPConnection = (_UnixConnection(address.path) if address.scheme == "unix"
                                        else http.client.HTTPConnection(address.host, address.port, timeout=5))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read().decode()
    finally:
        conn.close()


@pytest.fixture
def sock_dir(tmp_path: Path) -> Path:
    d = tmp_path / "run"
    d.mkdir(mode=0o755)
    return d


@pytest.fixture
def served(sock_dir: Path) -> Iterator[tuple[Endpoint, StatusBoard]]:
    board = StatusBoard()
    ep = Endpoint(ListenAddress("unix", path=str(sock_dir / "a.sock")), board.current,
                  last_success_at=lambda: board.last_success_at)
    ep.start()
    try:
        yield ep, board
    finally:
        ep.stop()


# -- addresses --------------------------------------------------------------------------------


def test_parse_listen() -> None:
    assert parse_listen("unix:///run/armstack.sock") == ListenAddress("unix", path="/run/armstack.sock")
    assert parse_listen("tcp://127.0.0.1:9100") == ListenAddress("tcp", host="127.0.0.1", port=9100)
    assert parse_listen("tcp://[::1]:9100") == ListenAddress("tcp", host="::1", port=9100)
    assert str(parse_listen("tcp://[::1]:0")) == "tcp://[::1]:0"


@pytest.mark.parametrize("url", ["", "http://127.0.0.1:80", "unix://run/a.sock", "unix:///run/", "tcp://127.0.0.1",
                                 "tcp://:9100", "tcp://127.0.0.1:99999", "tcp://127.0.0.1:x", "tcp://h:1/path",
                                 "unix:///" + "x" * 200])
def test_bad_listen_addresses_say_what_to_use(url: str) -> None:
    with pytest.raises(EndpointError, match=r"listen address|socket path"):
        parse_listen(url)


def test_up_with_a_bad_listen_address_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  a:\n    image: busybox\n")
    assert cli.main(["-f", str(tmp_path), "up", "--listen", "http://0.0.0.0:80"]) == 2
    assert "neither unix:// nor tcp://" in capsys.readouterr().err
    monkeypatch.setenv("ARMSTACK_LISTEN", "tcp://nohost")
    assert cli.main(["-f", str(tmp_path), "up"]) == 2
    assert "needs a host and a port" in capsys.readouterr().err


# -- serving ----------------------------------------------------------------------------------


def test_healthz_status_and_metrics(served: tuple[Endpoint, StatusBoard]) -> None:
    ep, board = served
    code, _, body = get(ep.address, "/healthz")
    assert (code, body) == (503, "the supervisor has not published a status yet\n")
    assert get(ep.address, "/status")[0] == 503
    board.publish(HEALTHY)
    assert get(ep.address, "/healthz")[::2] == (200, "ok\n")
    code, ctype, body = get(ep.address, "/status")
    assert code == 200 and ctype == "application/json" and '"project": "demo"' in body
    code, ctype, body = get(ep.address, "/metrics")
    assert code == 200 and ctype.startswith("text/plain; version=0.0.4")
    assert 'armstack_service_up{service="web"} 1' in body
    assert "armstack_last_apply_success_timestamp_seconds 5.0" in body
    assert get(ep.address, "/nope")[0] == 404
    board.publish({**HEALTHY, "services": {"web": {"state": "crash-loop", "last_exit": 2}}})
    assert get(ep.address, "/healthz")[::2] == (503, "service web is crash looping (last exit code 2)\n")


def test_the_socket_is_private_and_removed_on_stop(sock_dir: Path) -> None:
    path = sock_dir / "a.sock"
    ep = Endpoint(ListenAddress("unix", path=str(path)), lambda: None)
    ep.start()
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    finally:
        ep.stop()
    assert not path.exists()


def test_a_failing_handler_answers_500_and_is_logged(sock_dir: Path) -> None:
    logged: list[str] = []

    def broken() -> Mapping[str, Any] | None:
        raise RuntimeError("boom")

    ep = Endpoint(ListenAddress("unix", path=str(sock_dir / "a.sock")), broken,
                  log=lambda message, **kw: logged.append(message))
    ep.start()
    try:
        assert get(ep.address, "/healthz")[0] == 500
        assert get(ep.address, "/metrics")[0] == 500
        assert get(ep.address, "/healthz")[0] == 500   # the server keeps answering
    finally:
        ep.stop()
    assert logged and "RuntimeError: boom" in logged[0]


def test_tcp_listens_on_the_address_given(sock_dir: Path) -> None:
    board = StatusBoard()
    board.publish(HEALTHY)
    ep = Endpoint(ListenAddress("tcp", host="127.0.0.1", port=0), board.current)
    ep.start()
    try:
        bound = ep.bound
        assert bound.host == "127.0.0.1" and bound.port > 0
        assert get(bound, "/healthz")[::2] == (200, "ok\n")
    finally:
        ep.stop()


def test_a_stale_socket_is_replaced_but_a_live_one_or_a_file_is_not(sock_dir: Path) -> None:
    path = sock_dir / "a.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()   # the file stays, nobody listens: what a killed supervisor leaves
    first = Endpoint(ListenAddress("unix", path=str(path)), lambda: HEALTHY)
    first.start()
    try:
        second = Endpoint(ListenAddress("unix", path=str(path)), lambda: HEALTHY)
        with pytest.raises(EndpointError, match="another process is listening"):
            second.start()
        assert get(first.address, "/healthz")[0] == 200   # the live one was left alone
    finally:
        first.stop()
    path.write_text("not a socket")
    with pytest.raises(EndpointError, match="not a socket"):
        Endpoint(ListenAddress("unix", path=str(path)), lambda: None).start()
    assert path.read_text() == "not a socket"


def test_a_directory_anyone_may_write_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "open"
    d.mkdir()
    d.chmod(0o777)
    with pytest.raises(EndpointError, match="no sticky bit"):
        Endpoint(ListenAddress("unix", path=str(d / "a.sock")), lambda: None).start()
    d.chmod(0o1777)   # like /tmp: others cannot remove our socket
    ep = Endpoint(ListenAddress("unix", path=str(d / "a.sock")), lambda: None)
    ep.start()
    ep.stop()
    with pytest.raises(EndpointError, match="missing"):
        Endpoint(ListenAddress("unix", path=str(tmp_path / "nodir" / "a.sock")), lambda: None).start()


# -- the supervisor's side ----------------------------------------------------------------------


class _DeadEngine:
    def observe(self) -> Any:
        raise EngineError("The Docker engine is unreachable at the default socket.")


def test_a_failed_reconcile_turns_the_published_status_unhealthy(tmp_path: Path) -> None:
    settings = RuntimeSettings.from_environ({"ARMSTACK_LISTEN": "tcp://127.0.0.1:0"})
    sup = Supervisor(cast(Any, None), tmp_path / "compose.yaml", settings=settings)
    assert sup.publisher.listen == ListenAddress("tcp", host="127.0.0.1", port=0)
    sup.executor = cast(Any, _DeadEngine())
    sup.desired = cast(Any, object())
    sup.publisher.board.publish(HEALTHY)
    assert sup._reconcile() == "The Docker engine is unreachable at the default socket."
    verdict = health(sup.publisher.board.current())
    assert not verdict.ok and "unreachable" in verdict.reason


def test_a_supervisor_with_a_bad_listen_address_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="udp"):
        Supervisor(cast(Any, None), tmp_path / "compose.yaml",
                   settings=RuntimeSettings.from_args(argparse.Namespace(listen="udp://127.0.0.1:1"), {}))


def test_the_publisher_serves_what_it_was_handed_and_closes_its_socket(sock_dir: Path) -> None:
    lines: list[str] = []
    addr = ListenAddress("unix", path=str(sock_dir / "a.sock"))
    pub = Publisher(addr, {}, lambda m, **kw: lines.append(m))
    pub.start()
    try:
        assert get(addr, "/healthz")[0] == 503   # nothing published yet
        pub.publish(HEALTHY)
        assert get(addr, "/healthz")[:1] == (200,)
        pub.engine_failed("The Docker engine is unreachable at the default socket.")
        code, _, body = get(addr, "/healthz")
        assert code == 503 and "unreachable" in body
    finally:
        pub.stop()
    assert lines == [f"serving /healthz, /status and /metrics on unix://{sock_dir / 'a.sock'}"]
    assert not (sock_dir / "a.sock").exists()


def test_a_publisher_that_cannot_listen_starts_nothing(tmp_path: Path) -> None:
    pub = Publisher(ListenAddress("unix", path=str(tmp_path / "nodir" / "a.sock")), {"NOTIFY_SOCKET": "@x"},
                    lambda m, **kw: None)
    with pytest.raises(EndpointError, match="missing"):
        pub.start()
    assert pub.endpoint is None and pub.notifier is None


def test_a_publisher_without_an_address_serves_nothing() -> None:
    pub = Publisher(None, {}, lambda m, **kw: None)
    pub.start()
    assert pub.endpoint is None
    pub.stop()
