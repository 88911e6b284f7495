"""The watchdog and metrics endpoint of a real supervisor: /healthz follows a crash loop and its cure."""

from __future__ import annotations

import http.client
import signal
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import BASE_IMAGE, Stack


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path) -> None:
        super().__init__("localhost", timeout=5)
        self.socket_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(self.socket_path)


def get(sock: Path, path: str) -> tuple[int, str]:
    """(status, body); (0, why) while nothing answers on the socket yet."""
    conn = _UnixConnection(sock)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    except OSError as exc:
        return 0, str(exc)
    finally:
        conn.close()


def messages(sock: socket.socket, wait: float) -> list[str]:
    """What systemd's side of the notify socket received within ``wait`` seconds."""
    out: list[str] = []
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            out.append(sock.recv(4096).decode())
        except TimeoutError:
            break
    return out


def samples(sock: Path) -> dict[tuple[str, str], float]:
    """(sample name, service label) -> value, from /metrics parsed by Prometheus' own parser."""
    code, text = get(sock, "/metrics")
    assert code == 200, text
    return {(s.name, s.labels.get("service", "")): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_healthz_flips_on_a_crash_loop_and_back(stack: Stack, engine: Any) -> None:
    ctl = stack.dir / "ctl"
    ctl.mkdir(parents=True)
    # The service runs while /ctl/broken is absent and exits at once while it is present.
    command = "if [ -f /ctl/broken ]; then echo broken; exit 1; fi; trap 'exit 0' TERM; echo app up; " \
              "while true; do sleep 0.2; done"
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{command}"]
            restart: always
            stop_grace_period: 2s
            volumes: ["./ctl:/ctl"]
        """))
    sock = stack.dir / "run" / "a.sock"
    sock.parent.mkdir(mode=0o700)
    # systemd's end of the notify protocol; a 1 s watchdog means a ping every 0.5 s.
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    systemd.bind(str(stack.dir / "run" / "notify"))
    stack.env.update(NOTIFY_SOCKET=str(stack.dir / "run" / "notify"), WATCHDOG_USEC="1000000")
    try:
        _crash_loop_and_cure(stack, engine, ctl, sock, systemd)
    finally:
        systemd.close()


def _crash_loop_and_cure(stack: Stack, engine: Any, ctl: Path, sock: Path, systemd: socket.socket) -> None:
    proc = stack.start_supervisor("--listen", f"unix://{sock}")

    stack.wait("/healthz 200", lambda: get(sock, "/healthz") == (200, "ok\n"), timeout=30, every=0.1)
    healthy = samples(sock)
    assert healthy[("armstack_healthy", "")] == 1
    assert healthy[("armstack_service_up", "app")] == 1
    assert healthy[("armstack_service_crash_looping", "app")] == 0
    assert healthy[("armstack_service_probation", "app")] == 0
    assert healthy[("armstack_service_rollbacks_total", "app")] == 0
    assert healthy[("armstack_last_apply_success", "")] == 1
    assert healthy[("armstack_last_apply_success_timestamp_seconds", "")] <= time.time()
    assert ("armstack_last_apply_build_seconds", "app") in healthy
    assert healthy[("armstack_disk_total_bytes", "")] > 0
    code, body = get(sock, "/status")
    assert code == 200 and f'"project": "{stack.project}"' in body
    told = messages(systemd, 2.0)
    assert told.count("READY=1") == 1 and "WATCHDOG=1" in told, told

    (ctl / "broken").touch()
    engine.containers.get(stack.containers()["app"]["Id"]).kill()
    code, reason = stack.wait("/healthz 503 for the crash loop",
                              lambda: (r := get(sock, "/healthz"))[0] == 503 and "crash looping" in r[1] and r,
                              timeout=40, every=0.1)
    assert reason == "service app is crash looping (last exit code 1)\n"
    looping = samples(sock)
    assert looping[("armstack_healthy", "")] == 0
    assert looping[("armstack_service_up", "app")] == 0
    assert looping[("armstack_service_crash_looping", "app")] == 1
    assert looping[("armstack_service_restarts_total", "app")] >= 4
    assert looping[("armstack_service_last_exit_code", "app")] == 1
    messages(systemd, 0.6)   # what was under way when the loop was declared
    told = messages(systemd, 2.0)   # within the 8 s backoff that follows the 5th crash
    assert "WATCHDOG=1" not in told, told

    (ctl / "broken").unlink()   # the next restart out of backoff (8 s after the 5th crash) stays up
    stack.wait("/healthz 200 after the cure", lambda: get(sock, "/healthz") == (200, "ok\n"), timeout=40, every=0.2)
    healed = samples(sock)
    assert healed[("armstack_service_up", "app")] == 1
    assert healed[("armstack_service_crash_looping", "app")] == 0
    told = messages(systemd, 2.0)
    assert "WATCHDOG=1" in told and "READY=1" not in told, told

    assert stack.stop_supervisor(proc, signal.SIGTERM) == 0
    assert not sock.exists()   # the socket goes with the supervisor
    assert messages(systemd, 1.0)[-1:] == ["STOPPING=1"]
