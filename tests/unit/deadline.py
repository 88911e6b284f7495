"""A block that must finish in time fails the test instead of hanging the suite."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any


class Overrun(Exception):
    """Not an OSError (as TimeoutError is): code that catches OSError must not swallow it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise Overrun when the block runs longer than ``seconds`` (main thread only: SIGALRM)."""

    def expire(signum: int, frame: Any) -> None:
        raise Overrun(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
