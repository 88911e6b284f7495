"""Variable substitution in compose values, with docker compose's syntax and semantics.

=====================  ===================================================================
``$$``                 a literal ``$``
``$VAR``, ``${VAR}``   the value; unset → empty string, and the variable is reported so the
                       caller can warn (as docker compose does)
``${VAR:-default}``    ``default`` if VAR is unset or empty (``-`` : only if unset)
``${VAR:?message}``    error if VAR is unset or empty (``?`` : only if unset)
``${VAR:+alt}``        ``alt`` if VAR is set and non-empty, else empty (``+`` : if set)
=====================  ===================================================================

Defaults, messages and alternatives may themselves contain substitutions; they are expanded
only when used, so ``${A:-${B}}`` does not warn about B when A is set. A ``$`` followed by
anything else (``$1``, a trailing ``$``) is kept literally, like docker compose does.

:func:`interpolate` works on one string and raises :class:`InterpolationError`;
:func:`interpolate_tree` applies it to every string value of a parsed file and collects
problems instead of raising.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime.compose.yamlnodes import LineDict, LineList

_NAME = re.compile(r"[_A-Za-z][_A-Za-z0-9]*")

Lookup = Callable[[str], str | None]


class InterpolationError(ValueError):
    """A ``${...}`` expression is malformed."""


class MissingVariable(InterpolationError):
    """A required variable (``${VAR:?message}`` / ``${VAR?message}``) has no value."""

    def __init__(self, variable: str, message: str):
        self.variable = variable
        self.detail = message
        text = f"required variable {variable} is missing a value"
        super().__init__(f"{text}: {message}" if message else text)


def _lookup_of(env: Mapping[str, str] | Lookup) -> Lookup:
    if isinstance(env, Mapping):
        return env.get
    return env


def interpolate(text: str, env: Mapping[str, str] | Lookup) -> tuple[str, tuple[str, ...]]:
    """Expand ``text``; return the result and the names of unset variables it used plainly."""
    undefined: list[str] = []
    out = _Expander(_lookup_of(env), undefined).expand(text)
    return out, tuple(dict.fromkeys(undefined))


# ``${A:-${B:-...}}`` nests this deep at most: real files use two or three levels, and each
# level of expansion is a few stack frames.
MAX_NESTING = 32
_BRACE_TOKENS = re.compile(r"\$\$|\$\{|\}")


@dataclass
class _Expander:
    """Expands one text. ``closes`` maps the index of each ``${`` to that of its ``}``, found in
    one pass up front, so nested defaults cost no rescans (a long text stays linear)."""

    lookup: Lookup
    undefined: list[str]
    text: str = ""
    closes: dict[int, int] = field(default_factory=dict)

    def expand(self, text: str) -> str:
        self.text = text
        self.closes = _match_braces(text)
        return self._expand(0, len(text))

    def _expand(self, i: int, n: int) -> str:
        text = self.text
        out: list[str] = []
        while i < n:
            j = text.find("$", i, n)
            if j < 0:
                out.append(text[i:n])
                break
            out.append(text[i:j])
            nxt = text[j + 1] if j + 1 < n else ""
            if nxt == "$":
                out.append("$")
                i = j + 2
            elif nxt == "{":
                end = self.closes.get(j, -1)
                if end < 0 or end >= n:
                    raise InterpolationError(
                        f"invalid interpolation format in {_short(text)}: a '${{' is never closed"
                    )
                out.append(self._braced(j + 2, end))
                i = end + 1
            else:
                m = _NAME.match(text, j + 1, n)
                if m:
                    out.append(self._plain(m.group(0)))
                    i = m.end()
                else:
                    out.append("$")
                    i = j + 1
        return "".join(out)

    def _plain(self, name: str) -> str:
        value = self.lookup(name)
        if value is None:
            self.undefined.append(name)
            return ""
        return value

    def _braced(self, start: int, end: int) -> str:
        """The value of the ``${...}`` whose body is ``text[start:end]``."""
        text = self.text
        m = _NAME.match(text, start, end)
        if not m:
            raise InterpolationError(
                f"invalid interpolation format in {_short(text)}: {_short('${' + text[start:end] + '}', quote=False)}"
                " does not start with a variable name"
            )
        name, rest = m.group(0), m.end()
        if rest == end:
            return self._plain(name)
        colon = text[rest] == ":"
        op = text[rest + 1 : rest + 2] if colon else text[rest]
        arg = rest + 2 if colon else rest + 1
        if op not in ("-", "?", "+"):
            raise InterpolationError(
                f"invalid interpolation format in {_short(text)}: {_short('${' + text[start:end] + '}', quote=False)};"
                f" expected ${{{name}}}, ${{{name}:-default}}, ${{{name}:?message}} or ${{{name}:+alternative}}"
            )
        value = self.lookup(name)
        present = value is not None and (value != "" or not colon)
        if op == "-":
            return value if present and value is not None else self._expand(arg, end)
        if op == "+":
            return self._expand(arg, end) if present else ""
        if not present or value is None:
            raise MissingVariable(name, self._expand(arg, end))
        return value


def _match_braces(text: str) -> dict[int, int]:
    """Index of each ``${`` -> index of its closing ``}`` (nested ``${`` count; ``$$`` is literal)."""
    closes: dict[int, int] = {}
    open_at: list[int] = []
    for m in _BRACE_TOKENS.finditer(text):
        token = m.group(0)
        if token == "${":
            open_at.append(m.start())
            if len(open_at) > MAX_NESTING:
                raise InterpolationError(
                    f"the substitutions in {_short(text)} nest more than {MAX_NESTING} levels deep; "
                    "use fewer nested ${...:-...} defaults"
                )
        elif token == "}" and open_at:
            closes[open_at.pop()] = m.start()
    return closes


def _short(text: str, *, quote: bool = True) -> str:
    """``text`` for a message: quoted, and cut when long (a value can be a megabyte)."""
    cut = text if len(text) <= 60 else text[:57] + "..."
    return repr(cut) if quote else f"'{cut}'"


@dataclass(frozen=True)
class TreeIssue:
    """Something found while interpolating a parsed file; ``path`` is the keys leading to it."""

    path: tuple[str, ...]
    line: int | None
    message: str
    variable: str | None = None


@dataclass
class TreeResult:
    value: Any
    errors: list[TreeIssue] = field(default_factory=list)
    undefined: list[TreeIssue] = field(default_factory=list)


def interpolate_tree(tree: Any, env: Mapping[str, str] | Lookup) -> TreeResult:
    """Interpolate every string value (never keys) of ``tree``, keeping line information.

    Keys starting with ``x-`` are extension fields: compose ignores them, so their content is
    copied untouched rather than risk a required-variable error from something unused. (Values
    shared into services through anchors are interpolated where they are used.)
    """
    result = TreeResult(None)
    seen: set[str] = set()
    lookup = _lookup_of(env)

    def walk(node: Any, path: tuple[str, ...], line: int | None, active: frozenset[int]) -> Any:
        if isinstance(node, str):
            try:
                value, undefined = interpolate(node, lookup)
            except MissingVariable as exc:
                result.errors.append(TreeIssue(path, line, str(exc), exc.variable))
                return node
            except InterpolationError as exc:
                result.errors.append(TreeIssue(path, line, str(exc)))
                return node
            for name in undefined:
                if name not in seen:
                    seen.add(name)
                    result.undefined.append(
                        TreeIssue(path, line, f"the variable {name} is not set; using an empty string", name)
                    )
            return value
        if isinstance(node, (dict, list)) and id(node) in active:
            result.errors.append(TreeIssue(path, line, "a YAML alias refers to itself; this cannot be expanded"))
            return None
        if isinstance(node, dict):
            out = LineDict()
            out.line = getattr(node, "line", line)
            inner = active | {id(node)}
            for key, child in node.items():
                key_line = node.line_of(key) if isinstance(node, LineDict) else line
                if isinstance(key, str) and key.startswith("x-"):
                    out[key] = child
                else:
                    out[key] = walk(child, (*path, str(key)), key_line, inner)
                if isinstance(node, LineDict) and key in node.key_lines:
                    out.key_lines[key] = node.key_lines[key]
            return out
        if isinstance(node, list):
            seq = LineList()
            seq.line = getattr(node, "line", line)
            inner = active | {id(node)}
            for index, child in enumerate(node):
                item_line = node.line_of(index) if isinstance(node, LineList) else line
                seq.append(walk(child, path, item_line, inner))
            if isinstance(node, LineList):
                seq.item_lines = list(node.item_lines)
            return seq
        return node

    result.value = walk(tree, (), getattr(tree, "line", None), frozenset())
    return result
