"""Which file a line number belongs to, once several files are merged into one model.

A merged service can hold keys from three files (``-f`` overrides, ``extends``, ``include``),
so a line number alone no longer says where a value was written. :class:`SourceLine` is an
``int`` that also carries its file: it travels wherever lines already travel (``key_lines``,
``item_lines``, the ``line=`` of a problem) and the report takes the file from it.
"""

from __future__ import annotations

from typing import Any


class SourceLine(int):
    """A 1-based line number in ``file``."""

    file: str

    def __new__(cls, line: int, file: str) -> SourceLine:
        self = super().__new__(cls, line)
        self.file = file
        return self


def file_of(line: object) -> str | None:
    """The file a line number came from, when it is a :class:`SourceLine`."""
    return line.file if isinstance(line, SourceLine) else None


def tag_origin(tree: Any, file: str) -> None:
    """Mark, in place, every line of a parsed tree as belonging to ``file``.

    Lines already tagged (values brought in from another file) keep their file.
    """
    seen: set[int] = set()
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        line = getattr(node, "line", None)
        if isinstance(line, int) and not isinstance(line, SourceLine):
            node.line = SourceLine(line, file)  # type: ignore[union-attr]
        if isinstance(node, dict):
            lines = getattr(node, "key_lines", None)
            if lines is not None:
                for key, value in lines.items():
                    if not isinstance(value, SourceLine):
                        lines[key] = SourceLine(value, file)
            stack.extend(node.values())
        else:
            items = getattr(node, "item_lines", None)
            if items is not None:
                node.item_lines = [v if isinstance(v, SourceLine) else SourceLine(v, file)  # type: ignore[attr-defined]
                                   for v in items]
            stack.extend(node)
