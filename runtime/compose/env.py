"""``.env`` and ``env_file:`` files: ``KEY=VALUE`` lines as docker compose reads them.

- blank lines and lines starting with ``#`` are skipped; an ``export`` prefix is allowed;
- unquoted values are trimmed, and `` #...`` after a space starts a comment;
- ``'single quoted'`` values are literal; ``"double quoted"`` values understand ``\\n``,
  ``\\t``, ``\\"``, ``\\\\`` and ``\\$``; both may span several lines;
- unquoted and double-quoted values are interpolated (``${VAR:-x}``): earlier keys of the same
  file and the ``lookup`` given by the caller are visible;
- a bare ``KEY`` takes its value from ``lookup`` and is left out when that has none.

Problems are collected (file, line, message) rather than raised, so one run reports them all.
Their messages name at most the key: env files hold secrets, and a line that is wrong may be
one, so no message ever quotes a line or a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from runtime.compose.interpolate import InterpolationError, MissingVariable, interpolate

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$$"}


@dataclass
class EnvFile:
    values: dict[str, str] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)   # (line, message)
    undefined: list[tuple[int, str]] = field(default_factory=list)  # (line, variable)


def parse_env(
    text: str,
    lookup: Callable[[str], str | None] = lambda name: None,
    *,
    file_wins: bool = True,
) -> EnvFile:
    """Parse the text of an env file.

    ``file_wins`` decides what ``${VAR}`` inside the file sees when both an earlier key of the
    file and ``lookup`` define VAR. For ``.env`` the process environment wins (it overrides
    ``.env`` everywhere else too); for ``env_file:`` the file's own earlier keys win.
    """
    result = EnvFile()

    def resolve(name: str) -> str | None:
        first, second = (result.values.get, lookup) if file_wins else (lookup, result.values.get)
        value = first(name)
        return value if value is not None else second(name)

    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno = i + 1
        raw = lines[i].strip()
        i += 1
        if not raw or raw.startswith("#"):
            continue
        if raw.startswith("export ") or raw.startswith("export\t"):
            raw = raw[len("export") :].strip()
        m = _KEY.match(raw)
        rest = raw[m.end() :].lstrip() if m else ""
        if not m or (rest and not rest.startswith("=")):
            result.problems.append((lineno, "expected KEY=VALUE (the line is not shown: it may hold a secret)"))
            continue
        key = m.group(0)
        if not rest:
            value = lookup(key)
            if value is not None:
                result.values[key] = value
            continue
        value_text = rest[1:].lstrip()
        quote = value_text[:1]
        if quote in ("'", '"'):
            body, i, error = _quoted(value_text, quote, lines, i)
            if error:
                result.problems.append((lineno, f"the value of {key} {error}"))
                continue
            if quote == "'":
                result.values[key] = body
                continue
            expandable = body
        else:
            expandable = re.split(r"\s#", value_text, maxsplit=1)[0].rstrip()
        try:
            value, undefined = interpolate(expandable, resolve)
        except MissingVariable as exc:
            result.problems.append((lineno, f"the value of {key} requires the variable {exc.variable}, "
                                            "which has no value; set it"))
            continue
        except InterpolationError:
            result.problems.append((lineno, f"the value of {key} has an invalid ${{...}} substitution; expected "
                                            "${VAR}, ${VAR:-default}, ${VAR:?message} or ${VAR:+alternative}, "
                                            "nested at most a few levels (write $$ for a literal $)"))
            continue
        result.undefined.extend((lineno, name) for name in undefined)
        result.values[key] = value
    return result


def _quoted(first: str, quote: str, lines: list[str], next_index: int) -> tuple[str, int, str | None]:
    """Body of a quoted value that starts at ``first`` and may continue on following lines."""
    text = first[1:]
    parts: list[str] = []
    while True:
        j = 0
        while j < len(text):
            c = text[j]
            if quote == '"' and c == "\\" and j + 1 < len(text):
                parts.append(_ESCAPES.get(text[j + 1], "\\" + text[j + 1]))
                j += 2
                continue
            if c == quote:
                trailing = text[j + 1 :].strip()
                if trailing and not trailing.startswith("#"):
                    return "", next_index, "has text after its closing quote; quote all of it, or use # for a comment"
                return "".join(parts), next_index, None
            parts.append(c)
            j += 1
        if next_index >= len(lines):
            return "", next_index, f"opens a {quote} that is never closed"
        parts.append("\n")
        text = lines[next_index]
        next_index += 1
