"""Typed update reports: what one apply on a device rebuilt, recreated and how long it took.

The runtime writes the report as JSON (``status.last_apply``, ``armstack apply --json``; the
shape is documented in ``runtime/report.py``). :class:`UpdateReport` parses it into typed
fields and still behaves as the read-only mapping it came from, so ``report["report"]["web"]``
keeps working where tests predate the dataclasses.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ServiceReport:
    """One service's part of an apply."""

    name: str
    rebuilt: bool = False
    steps: int = 0                 # Dockerfile steps of the build (0: not built)
    cached: int = 0                # of those, answered from the layer cache
    build_seconds: float = 0.0
    recreated: bool = False        # an existing container was replaced
    created: bool = False          # a container was created where there was none
    downtime_seconds: float = 0.0  # old container stopped -> new one running
    strategy: str = "download-then-kill"

    @property
    def touched(self) -> bool:
        """Whether the apply changed anything about this service's image or container."""
        return self.rebuilt or self.recreated or self.created

    @classmethod
    def from_json(cls, name: str, doc: Mapping[str, Any]) -> ServiceReport:
        return cls(
            name=name,
            rebuilt=bool(doc.get("rebuilt")),
            steps=int(doc.get("steps") or 0),
            cached=int(doc.get("cached") or 0),
            build_seconds=float(doc.get("build_seconds") or 0.0),
            recreated=bool(doc.get("recreated")),
            created=bool(doc.get("created")),
            downtime_seconds=float(doc.get("downtime_seconds") or 0.0),
            strategy=str(doc.get("strategy") or "download-then-kill"),
        )


@dataclass(frozen=True)
class UpdateReport(Mapping[str, Any]):
    """An apply's outcome; also a mapping over the raw JSON (``report["ok"]``, ``report.get(...)``)."""

    generation: int = 0
    ok: bool = False
    error: str | None = None
    finished_at: float | None = None
    services: Mapping[str, ServiceReport] = field(default_factory=dict)
    totals: Mapping[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, doc: Mapping[str, Any] | None) -> UpdateReport:
        doc = dict(doc or {})
        per_service = doc.get("report") or {}
        return cls(
            generation=int(doc.get("generation") or 0),
            ok=bool(doc.get("ok")),
            error=doc.get("error"),
            finished_at=doc.get("finished_at"),
            services={name: ServiceReport.from_json(name, e or {}) for name, e in per_service.items()},
            totals=dict(doc.get("totals") or {}),
            removed=tuple(doc.get("removed") or ()),
            raw=doc,
        )

    def service(self, name: str) -> ServiceReport:
        """The report of one service; KeyError names the services the report has."""
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(f"no service {name!r} in the report; it has: {', '.join(self.services) or 'none'}") from None

    @property
    def rebuilt(self) -> list[str]:
        return [n for n, s in self.services.items() if s.rebuilt]

    @property
    def recreated(self) -> list[str]:
        return [n for n, s in self.services.items() if s.recreated]

    @property
    def created(self) -> list[str]:
        return [n for n, s in self.services.items() if s.created]

    @property
    def untouched(self) -> list[str]:
        return [n for n, s in self.services.items() if not s.touched]

    @property
    def build_seconds(self) -> float:
        return sum(s.build_seconds for s in self.services.values())

    # -- the mapping over the raw JSON ---------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)
