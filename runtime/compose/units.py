"""Durations and byte sizes as compose files write them.

Durations follow Go's ``time.ParseDuration`` (``1m30s``, ``500ms``, ``2us``, ``1.5h``), which is
what docker compose accepts; a bare number means seconds. Sizes follow docker's
``RAMInBytes``: binary multiples (``1k`` = 1024), case-insensitive, an optional ``i``/``b``
suffix (``512m``, ``512mb``, ``512MiB``); a bare number means bytes.
Both raise :class:`ValueError` with a message that shows an accepted form.
"""

from __future__ import annotations

import math
import re

_DURATION_UNITS: dict[str, float] = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_DURATION_PART = re.compile(rf"({_NUMBER})(ns|us|µs|μs|ms|s|m|h)")
_DURATION_FULL = re.compile(rf"(?:{_NUMBER}(?:ns|us|µs|μs|ms|s|m|h))+")
_PLAIN_NUMBER = re.compile(rf"{_NUMBER}")

_SIZE = re.compile(r"(\d+(?:\.\d+)?) ?([kmgtp])?(i)?(b)?", re.IGNORECASE)
_SIZE_MULTIPLIERS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}
# The engine holds durations as int64 nanoseconds and sizes as int64 bytes (Go's limits).
MAX_DURATION = (2**63 - 1) / 1e9
MAX_SIZE = 2**63 - 1


def parse_duration(value: object) -> float:
    """Seconds in ``value``: a non-negative number, or a string like ``1m30s`` / ``500ms``."""
    hint = "expected a number of seconds or a duration such as '10s', '1m30s', '500ms' or '1h'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"invalid duration {value!r}: {hint}")
    if isinstance(value, (int, float)):
        seconds = float(value) if isinstance(value, float) or abs(value) <= 2**63 else math.inf
    else:
        text = value.strip()
        if _PLAIN_NUMBER.fullmatch(text):
            seconds = float(text)
        elif _DURATION_FULL.fullmatch(text):
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))
        else:
            raise ValueError(f"invalid duration {value!r}: {hint}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: {hint} (it must not be negative)")
    if seconds > MAX_DURATION:
        raise ValueError(f"invalid duration {value!r}: it is longer than the engine can hold (about 292 years)")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest Go-style spelling of ``seconds`` (``90`` → ``1m30s``), exact to a microsecond."""
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"cannot format {seconds!r} as a duration")
    micros = round(seconds * 1_000_000)
    if micros == 0:
        return "0s"
    hours, micros = divmod(micros, 3_600_000_000)
    minutes, micros = divmod(micros, 60_000_000)
    secs, micros = divmod(micros, 1_000_000)
    millis, micros = divmod(micros, 1000)
    parts = [(hours, "h"), (minutes, "m"), (secs, "s"), (millis, "ms"), (micros, "us")]
    return "".join(f"{n}{unit}" for n, unit in parts if n)


def parse_size(value: object) -> int:
    """Bytes in ``value``: a non-negative integer, or a string like ``512m``, ``1g``, ``100kb``."""
    hint = "expected a number of bytes or a size such as '512m', '1g', '100k' or '1024b'"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"invalid size {value!r}: {hint}")
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value) or value < 0:
            raise ValueError(f"invalid size {value!r}: {hint} (it must not be negative)")
        size = value
    else:
        match = _SIZE.fullmatch(value.strip())
        # "1i" (binary marker without a unit) is not a size anywhere.
        if not match or (match.group(3) and not match.group(2)):
            raise ValueError(f"invalid size {_short(value)}: {hint}")
        number, unit = match.group(1), (match.group(2) or "").lower()
        size = float(number) * _SIZE_MULTIPLIERS[unit]
    if size > MAX_SIZE:
        raise ValueError(f"invalid size {_short(value)}: it is larger than the engine can hold (8 EiB)")
    return int(size)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
