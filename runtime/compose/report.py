"""Collects the errors and warnings of one load, and the cross-references to check at the end.

Parsing never stops at the first problem: every part records what it found here, and the
loader raises one :class:`~runtime.errors.ComposeError` carrying all errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from runtime.compose.origin import file_of
from runtime.errors import Problem

RefKind = Literal["depends_on", "volumes_from", "network_mode", "namespace", "volume", "network", "container_name",
                  "secret", "config"]


@dataclass(frozen=True)
class Ref:
    """A service naming something defined elsewhere in the file (checked once all is read)."""

    service: str
    kind: RefKind
    target: str
    field: str
    line: int | None


@dataclass
class Report:
    file: str
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    refs: list[Ref] = field(default_factory=list)
    ports: int = 0   # port bindings read so far: ranges expand, and the file's total is bounded

    def error(
        self, message: str, *, service: str | None = None, field: str | None = None, line: int | None = None,
        file: str | None = None,
    ) -> None:
        # A line read from a merged-in file knows that file (see runtime.compose.origin).
        self.errors.append(Problem(file or file_of(line) or self.file, message, service, field, _plain(line)))

    def warn(
        self, message: str, *, service: str | None = None, field: str | None = None, line: int | None = None,
        file: str | None = None,
    ) -> None:
        self.warnings.append(Problem(file or file_of(line) or self.file, message, service, field, _plain(line)))


def _plain(line: int | None) -> int | None:
    return None if line is None else int(line)
