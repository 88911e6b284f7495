"""Type checks for compose values, raising :class:`FieldError` with "expected ..." messages.

Interpolation turns ``privileged: ${PRIV:-false}`` into the *string* ``"false"``, so typed
fields accept the string spellings of their type too, as docker compose does.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from runtime.compose.yamlnodes import LineDict, LineList

_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n"}
# The engine API stores counts, sizes and nanoseconds in Go int64s: a larger number is not a
# setting anything can carry out, so it is refused here rather than by the engine at `up`.
INT64_MAX = 2**63 - 1


class FieldError(ValueError):
    """One value is wrong. ``line`` (1-based) overrides the line of the field's key when set."""

    def __init__(self, message: str, line: int | None = None, field: str | None = None):
        self.line = line
        self.field = field
        super().__init__(message)


def describe(value: Any) -> str:
    """How a wrong value reads in a message: its type and (short) text."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def as_str(value: Any, what: str = "a string") -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise FieldError(f"expected {what}, found {describe(value)}")


def scalar_text(value: Any, what: str = "a string") -> str:
    """A scalar as text; booleans become ``true``/``false`` (environment, labels, args)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return as_str(value, what)


def name_key(value: Any, what: str) -> str:
    """A key used as a name (service, volume, network): compose requires a string, and `1:` is a number."""
    if isinstance(value, str):
        return value
    written = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    kind = "a number" if isinstance(value, (int, float)) and not isinstance(value, bool) else describe(value)
    raise FieldError(f"the {what} name {written} must be a string, but YAML reads it as {kind}; "
                     f"quote it: '{written}':")


def as_bool(value: Any, what: str = "true or false") -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise FieldError(f"expected {what}, found {describe(value)}")


def as_int(value: Any, what: str = "an integer") -> int:
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) < 64:
        with contextlib.suppress(ValueError):
            number = int(value.strip())
    if number is None or abs(number) > INT64_MAX:
        raise FieldError(f"expected {what}, found {describe(value)}")
    return number


def as_float(value: Any, what: str = "a number") -> float:
    """A finite number: NaN and infinities are no setting the engine can apply."""
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int too large for a float
            number = float(value)
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not math.isfinite(number):
        raise FieldError(f"expected {what}, found {describe(value)}")
    return number


def as_list(value: Any, what: str) -> LineList:
    """``value`` as a list; ``what`` names the items (``"strings"`` → "expected a list of strings")."""
    if isinstance(value, LineList):
        return value
    if isinstance(value, list):
        return LineList(value)
    raise FieldError(f"expected a list of {what}, found {describe(value)}")


def as_map(value: Any, what: str) -> LineDict:
    if isinstance(value, LineDict):
        return value
    if isinstance(value, dict):
        return LineDict(value)
    raise FieldError(f"expected a mapping of {what}, found {describe(value)}")


def str_or_list(value: Any, what: str) -> tuple[str, ...]:
    """A string, or a list of strings (``tmpfs``, ``env_file``, ``dns``...)."""
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return (as_str(value),)
    if not isinstance(value, list):
        raise FieldError(f"expected a string or a list of {what}, found {describe(value)}")
    return tuple(_item(value, i, lambda v: as_str(v, f"each item to be a {what[:-1]}")) for i in range(len(value)))


def str_list(value: Any, what: str) -> tuple[str, ...]:
    items = as_list(value, what)
    return tuple(_item(items, i, lambda v: as_str(v, f"each item to be a {what[:-1]}")) for i in range(len(items)))


def _item(items: list[Any], index: int, convert: Any) -> Any:
    try:
        return convert(items[index])
    except FieldError as exc:
        line = items.line_of(index) if isinstance(items, LineList) else None
        raise FieldError(str(exc), line) from exc


def pairs(value: Any, what: str, *, allow_bare: bool) -> list[tuple[str, str | None, int | None]]:
    """``KEY=VALUE`` list or ``KEY: VALUE`` mapping → ``(key, value-or-None, line)`` in order.

    ``None`` stands for a key without a value (``- KEY`` or ``KEY:``), which callers resolve.
    """
    out: list[tuple[str, str | None, int | None]] = []
    if isinstance(value, dict):
        for key, raw in value.items():
            line = value.line_of(key) if isinstance(value, LineDict) else None
            if isinstance(raw, (dict, list)):
                raise FieldError(f"expected a string or number for {key}, found {describe(raw)}", line)
            out.append((scalar_text(key), None if raw is None else scalar_text(raw), line))
        return out
    if isinstance(value, list):
        for index, raw in enumerate(value):
            line = value.line_of(index) if isinstance(value, LineList) else None
            if not isinstance(raw, str):
                raise FieldError(f"expected each item to be a 'KEY=VALUE' string, found {describe(raw)}", line)
            key, sep, text = raw.partition("=")
            if not key:
                raise FieldError(f"expected 'KEY=VALUE', found {raw!r} (the key is empty)", line)
            if not sep and not allow_bare:
                raise FieldError(f"expected 'KEY=VALUE', found {raw!r}", line)
            out.append((key, text if sep else None, line))
        return out
    raise FieldError(f"expected a list of 'KEY=VALUE' strings or a mapping of {what}, found {describe(value)}")
