"""The one place where log lines are presented: ``service | line``.

Every line the stack or the runtime prints goes through a :class:`LogPresenter`, like
docker-compose 1.x's ``log_printer``: the prefix is padded to the longest service name known,
each service gets a colour from a fixed cycle, and ``fmt="json"`` emits one JSON object per
line instead (for log shippers and the test harness).

Colour decision (see https://no-color.org):

* ``color=None`` (auto): colour only when ``out.isatty()``. ``NO_COLOR`` (set and not empty)
  and ``TERM=dumb`` are read with the other settings (``RuntimeSettings.color``), which then
  pass ``color=False``.
* ``color=True``: an explicit ``--color`` flag; it wins over ``NO_COLOR``, as no-color.org
  allows a command-line flag to override the environment variable.
* ``color=False``: never.

The presenter is shared by many follower threads: each call writes all of its lines with a
single ``write`` + ``flush`` under one lock, so concurrent lines never interleave.
"""

from __future__ import annotations

import json
import sys
import threading
import time as _time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal, TextIO

RUNTIME_NAME = "armstack"

# Same order as docker-compose's ``rainbow()``: normal colours first, then the bright ones.
_PALETTE = ("36", "33", "32", "35", "34", "96", "93", "92", "95", "94")
_RUNTIME_COLOR = "1"   # bold, default colour: the runtime's own lines stand apart from services
_RESET = "\x1b[0m"

Format = Literal["text", "json"]
Level = Literal["debug", "info", "warning", "error"]


def color_wanted(out: TextIO, color: bool | None) -> bool:
    """Resolve the colour setting (``RuntimeSettings.color``) against the output stream."""
    if color is not None:
        return color
    isatty = getattr(out, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:   # a closed stream
        return False


def rfc3339(epoch: float) -> str:
    """Epoch seconds as an RFC 3339 UTC timestamp with microseconds, e.g. ``2024-05-01T10:00:00.000001Z``."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def split_lines(text: str) -> list[str]:
    """The lines of ``text``: one trailing newline dropped, ``\\r\\n`` treated as ``\\n``.

    Only ``\\n`` separates lines (not ``str.splitlines``' form feeds or Unicode separators),
    because that is what the program wrote and what ``docker logs`` shows.
    """
    if text.endswith("\n"):
        text = text[:-1]
    return [part[:-1] if part.endswith("\r") else part for part in text.split("\n")]


class LogPresenter:
    """Writes ``service | line`` (or JSON lines) for every service and for the runtime itself."""

    def __init__(
        self,
        out: TextIO = sys.stdout,
        *,
        fmt: Format = "text",
        color: bool | None = None,
        timestamps: bool = False,
    ) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"log format must be 'text' or 'json', not {fmt!r}")
        self._out = out
        self.fmt: Format = fmt
        self.color = fmt == "text" and color_wanted(out, color)
        self.timestamps = timestamps
        self._lock = threading.Lock()
        self._width = len(RUNTIME_NAME)
        self._colors: dict[str, str] = {RUNTIME_NAME: _RUNTIME_COLOR}
        self._closed = False

    @property
    def width(self) -> int:
        """Width the service name is padded to."""
        return self._width

    def add_names(self, names: Iterable[str]) -> None:
        """Register service names: widens the prefix and assigns colours in the order given."""
        with self._lock:
            for name in names:
                self._register(name)

    def color_of(self, service: str) -> str:
        """The ANSI SGR code used for ``service`` (assigning one if the name is new)."""
        with self._lock:
            return self._register(service)

    def line(self, service: str, text: str, *, stream: str = "stdout", time: float | None = None) -> None:
        """Present one line (or several, if ``text`` contains newlines) of ``service``'s output."""
        self._emit(service, text, stream=stream, time=time, level=None)

    def runtime(self, text: str, level: Level = "info") -> None:
        """Present a message of the runtime itself, under the name ``armstack``."""
        self._emit(RUNTIME_NAME, text, stream="runtime", time=None, level=level)

    # -- internals -------------------------------------------------------------------------

    def _register(self, name: str) -> str:
        # Caller holds the lock. First come, first coloured: the supervisor registers services
        # in compose-file order, so a stack gets the same colours on every run.
        code = self._colors.get(name)
        if code is None:
            used = len(self._colors) - 1   # the runtime's own entry takes no palette slot
            code = _PALETTE[used % len(_PALETTE)]
            self._colors[name] = code
            self._width = max(self._width, len(name))
        return code

    def _emit(self, service: str, text: str, *, stream: str, time: float | None, level: str | None) -> None:
        lines = split_lines(text)
        when = time if time is not None else _now()
        with self._lock:
            if self._closed:
                return
            code = self._register(service)
            if self.fmt == "json":
                chunk = "".join(self._json_line(service, ln, stream, when, level) for ln in lines)
            else:
                prefix = self._text_prefix(service, code, when, level)
                chunk = "".join(f"{prefix}{ln}\n" for ln in lines)
            try:
                self._out.write(chunk)
                self._out.flush()
            except (BrokenPipeError, ValueError):
                # The reader went away (`armstack logs | head`) or the stream was closed: keep
                # the follower threads alive and quietly drop what nobody can read.
                self._closed = True

    def _text_prefix(self, service: str, code: str, when: float, level: str | None) -> str:
        name = f"{service:<{self._width}} |"
        if self.color:
            name = f"\x1b[{code}m{name}{_RESET}"
        stamp = f"{rfc3339(when)} " if self.timestamps else ""
        tag = f"{level}: " if level in ("warning", "error") else ""
        return f"{name} {stamp}{tag}"

    @staticmethod
    def _json_line(service: str, text: str, stream: str, when: float, level: str | None) -> str:
        obj: dict[str, object] = {"service": service, "stream": stream, "time": rfc3339(when), "line": text}
        if level is not None:
            obj["level"] = level
        return json.dumps(obj, ensure_ascii=False) + "\n"


def _now() -> float:
    # A module-level function so tests can pin the clock.
    return _time.time()
