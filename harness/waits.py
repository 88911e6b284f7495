"""Waiting for a condition, the way testcontainers' wait strategies do: no bare sleeps.

A wait polls a cheap probe at a short interval until it holds or the deadline passes; the
timeout error says what it waited for and, through ``describe``, the state it last saw.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import FaultError, HarnessError, WaitTimeout

T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], timeout: float, what: str,
             describe: Callable[[], str] | None = None, interval: float = 0.1) -> T:
    """Call ``probe`` until it returns something truthy; return that. Raise WaitTimeout after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = probe()
            if result:
                return result
        except FaultError as e:  # "no such container (yet)": what a wait is for
            last_error = e
        except HarnessError:
            raise  # the probe saw something that no amount of waiting will fix
        except Exception as e:  # a probe may fail while a container restarts; keep waiting
            last_error = e
        if time.monotonic() >= deadline:
            detail = describe() if describe else ""
            if last_error is not None:
                detail += f"\nlast probe error: {last_error}"
            raise WaitTimeout(f"timed out after {timeout:.1f}s waiting for {what}" + (f"\n{detail}" if detail else ""))
        time.sleep(interval)


# TCP states in /proc/net/tcp{,6}: 0A is LISTEN.
_LISTEN = "0A"


def listening_ports(proc_net_tcp: str) -> frozenset[int]:
    """Ports in LISTEN state in the text of ``/proc/<pid>/net/tcp`` and ``tcp6`` (headers skipped).

    Read from the device's side of a container's network namespace, so a port counts as open
    only when the service listens, whatever tools its image lacks."""
    ports: set[int] = set()
    for line in proc_net_tcp.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[3] != _LISTEN or ":" not in fields[1]:
            continue
        try:
            ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except ValueError:
            continue
    return frozenset(ports)


def first_match(lines: list[str], pattern: re.Pattern[str], start: int = 0) -> str | None:
    """The first line from index ``start`` on that ``pattern`` matches (``re.search``), or None."""
    return next((ln for ln in lines[start:] if pattern.search(ln)), None)
