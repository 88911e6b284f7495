"""The chaos soak's checker: every record the ledger acknowledged is in its file, whole. Pure.

The workload (``stacks/ledger``) stores ``<seq> <payload> <sha256("<seq> <payload>")[:16]>``
lines and acknowledges a record only after its fsync returned. The soak's client keeps the
history (which sequence numbers were acknowledged, which attempts failed or timed out); at the
end the file is read back and held to it:

- **lost**: acknowledged, not in the file;
- **corrupt**: in the file under an acknowledged number, but not with the payload that was sent;
- **torn**: lines that fail their checksum (allowed only where nothing acknowledged is affected:
  the ledger cuts a torn tail when it starts, so one in the middle means a line was damaged);
- **indeterminate**: attempts that got no answer; found or not, neither is an error.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


def checksum(seq: int, payload: str) -> str:
    return hashlib.sha256(f"{seq} {payload}".encode()).hexdigest()[:16]


def payload_for(seed: int, seq: int) -> str:
    """The payload of record ``seq`` in a soak with ``seed``: known to the checker without storing it."""
    return hashlib.sha256(f"{seed}:{seq}".encode()).hexdigest()[:24]


@dataclass(frozen=True)
class LedgerFile:
    """A ledger file read back: its valid records and the lines that failed their checksum."""

    records: Mapping[int, str]               # seq -> payload, of lines whose checksum holds
    torn: tuple[int, ...] = ()               # 1-based line numbers that failed
    duplicates: tuple[int, ...] = ()         # seqs stored more than once

    @classmethod
    def parse(cls, data: bytes) -> LedgerFile:
        records: dict[int, str] = {}
        torn, dups = [], []
        for n, raw in enumerate(data.split(b"\n"), 1):
            if not raw:
                continue
            parts = raw.decode(errors="replace").split(" ")
            if len(parts) != 3 or not parts[0].isdigit() or checksum(int(parts[0]), parts[1]) != parts[2]:
                torn.append(n)
                continue
            seq = int(parts[0])
            if seq in records:
                dups.append(seq)
            records[seq] = parts[1]
        return cls(records, tuple(torn), tuple(dups))


@dataclass(frozen=True)
class Verdict:
    """The checker's finding over one soak."""

    acknowledged: int
    stored: int
    lost: tuple[int, ...] = ()
    corrupt: tuple[int, ...] = ()
    torn: tuple[int, ...] = ()
    indeterminate: int = 0
    indeterminate_found: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.corrupt)

    def summary(self) -> str:
        text = (f"{self.acknowledged} acknowledged, {self.stored} stored, {len(self.lost)} lost, "
                f"{len(self.corrupt)} corrupt, {len(self.torn)} torn line(s), "
                f"{self.indeterminate_found}/{self.indeterminate} unanswered found")
        if self.lost:
            text += f"; lost: {', '.join(map(str, self.lost[:10]))}{' ...' if len(self.lost) > 10 else ''}"
        return text


def check(seed: int, acknowledged: Iterable[int], unanswered: Iterable[int], ledger: LedgerFile) -> Verdict:
    """Hold the file to the history: lost and corrupt acknowledged records are what fails a soak."""
    acked = sorted(set(acknowledged))
    open_ = set(unanswered)
    lost = tuple(s for s in acked if s not in ledger.records)
    corrupt = tuple(s for s in acked if s in ledger.records and ledger.records[s] != payload_for(seed, s))
    notes = []
    if ledger.duplicates:
        notes.append(f"stored twice: {', '.join(map(str, ledger.duplicates[:10]))}")
    return Verdict(acknowledged=len(acked), stored=len(ledger.records), lost=lost, corrupt=corrupt,
                   torn=ledger.torn, indeterminate=len(open_),
                   indeterminate_found=sum(1 for s in open_ if s in ledger.records), notes=tuple(notes))
