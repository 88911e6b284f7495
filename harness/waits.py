"""Waiting for a condition, the way testcontainers' wait strategies do: no bare sleeps.

A wait polls a cheap probe at a short interval until it holds or the deadline passes; the
timeout error says what it waited for and, through ``describe``, the state it last saw.
"""

from __future__ import annotations

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
