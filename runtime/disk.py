"""Disk pressure policy — pure: watermarks, what to evict, whether an update fits. No I/O.

An SD card that fills up is the most common way a device dies, so the supervisor keeps the
engine's data root between two watermarks::

    used > high (85 %)   → evict the stack's unused images, least recently used first, then
                           its build cache, until the projected usage is ≤ low (80 %)
    before a Build/Pull  → :func:`fits`: would the update, after every possible eviction,
                           stay ≤ high? If not, the update is refused and retried later.

Rules every plan from :func:`plan_eviction` keeps (property-tested):

* only images the stack owns are candidates (``owned`` — by label, or recorded as pulled for
  it); foreign images are never touched; volumes are not images and never appear here;
* never an image in use by a container, nor a ``protected`` one: the images the desired
  services need (the current release) and the ``keep_releases`` previous releases of each
  service, kept for rollback. The previous release is kept even when that means an update
  must be refused: rolling back must stay possible on a device nobody can reach, and an
  update can be retried once space frees up, a deleted rollback cannot;
* least recently used first (``last_used``, then creation time, then id: deterministic);
* stop as soon as the projected usage is ≤ the low watermark.

Watermarks are given as a percentage of the usable space (``85%`` or ``85``) or as used
bytes (``900M``, ``2G``, ``1500000000``): ``--disk-high``/``--disk-low`` or the
``ARMSTACK_DISK_HIGH``/``ARMSTACK_DISK_LOW`` environment variables. Percentages are of
``used + available`` as ``df`` shows them (the root-reserved blocks are not usable).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

MIB = 1 << 20
DEFAULT_HIGH = "85%"
DEFAULT_LOW = "80%"
DEFAULT_KEEP_RELEASES = 1
DEFAULT_BUILD_CACHE_BUDGET = 256 * MIB
# A build writes its context to the engine and its new layers next to the base image; when no
# earlier release tells how big the result gets, assume this much beyond the context.
DEFAULT_BUILD_OVERHEAD = 64 * MIB

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


class DiskConfigError(ValueError):
    """A watermark or size setting cannot be parsed; the message says what is expected."""


def parse_bytes(text: str) -> int:
    """``"512M"`` → 536870912 (binary units; ``k``/``m``/``g``/``t``, optional ``b``/``ib``)."""
    m = _SIZE.match(str(text))
    if not m:
        raise DiskConfigError(f"bad size {text!r}: expected a number of bytes such as 900M, 2G or 1500000000")
    return int(float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower()))


@dataclass(frozen=True)
class Threshold:
    """A watermark: a percentage of the usable space, or an absolute number of used bytes."""

    value: float
    percent: bool = True

    @classmethod
    def parse(cls, text: str | float) -> Threshold:
        """``"85%"``/``"85"``/``85`` → 85 %; ``"900M"``/``"2G"``/``"1500000000"`` → bytes.

        A bare number up to 100 is a percentage (nobody means a 100-byte watermark); larger
        bare numbers are bytes.
        """
        if isinstance(text, int | float):
            text = str(text)
        raw = text.strip()
        if raw.endswith("%"):
            try:
                value = float(raw[:-1])
            except ValueError:
                raise DiskConfigError(f"bad watermark {text!r}: expected e.g. 85% or 900M") from None
            return cls._percent(value, text)
        try:
            value = float(raw)
        except ValueError:
            return cls(float(parse_bytes(raw)), percent=False)
        if value <= 100:
            return cls._percent(value, text)
        return cls(float(int(value)), percent=False)

    @classmethod
    def _percent(cls, value: float, text: str) -> Threshold:
        if not 0 < value <= 100:
            raise DiskConfigError(f"bad watermark {text!r}: a percentage must be above 0 and at most 100")
        return cls(value, percent=True)

    def used_bytes(self, usable: int) -> int:
        """The used-bytes level this watermark stands for on a filesystem of ``usable`` bytes."""
        if self.percent:
            return int(usable * self.value / 100.0)
        return min(int(self.value), usable)

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{int(self.value)}B"


@dataclass(frozen=True)
class DiskPolicy:
    """Watermarks and cleanup knobs (defaults: act above 85 %, clean to 80 %, keep 1 release)."""

    high: Threshold = field(default_factory=lambda: Threshold.parse(DEFAULT_HIGH))
    low: Threshold = field(default_factory=lambda: Threshold.parse(DEFAULT_LOW))
    keep_releases: int = DEFAULT_KEEP_RELEASES
    build_cache_budget: int = DEFAULT_BUILD_CACHE_BUDGET

    def __post_init__(self) -> None:
        if self.keep_releases < 0:
            raise DiskConfigError("keep_releases must be 0 or more")
        if self.build_cache_budget < 0:
            raise DiskConfigError("the build cache budget must be 0 or more bytes")
        if self.high.percent == self.low.percent and self.low.value > self.high.value:
            raise DiskConfigError(f"the low watermark ({self.low}) must not be above the high one ({self.high})")

    @classmethod
    def from_settings(cls, high: str | None = None, low: str | None = None, keep_releases: str | int | None = None,
                      build_cache_budget: str | int | None = None) -> DiskPolicy:
        """Build a policy from strings (CLI flags or environment); ``None`` keeps a default."""
        try:
            keep = DEFAULT_KEEP_RELEASES if keep_releases in (None, "") else int(keep_releases)
        except ValueError:
            raise DiskConfigError(f"bad keep-releases {keep_releases!r}: expected a whole number") from None
        budget = DEFAULT_BUILD_CACHE_BUDGET
        if build_cache_budget not in (None, ""):
            budget = (build_cache_budget if isinstance(build_cache_budget, int)
                      else parse_bytes(str(build_cache_budget)))
        return cls(high=Threshold.parse(high or DEFAULT_HIGH), low=Threshold.parse(low or DEFAULT_LOW),
                   keep_releases=keep, build_cache_budget=budget)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DiskPolicy:
        return cls.from_settings(environ.get("ARMSTACK_DISK_HIGH"), environ.get("ARMSTACK_DISK_LOW"),
                                 environ.get("ARMSTACK_KEEP_RELEASES"), environ.get("ARMSTACK_BUILD_CACHE_BUDGET"))

    def high_bytes(self, usage: DiskUsage) -> int:
        return self.high.used_bytes(usage.usable)

    def low_bytes(self, usage: DiskUsage) -> int:
        # A low watermark above the high one (mixed units) would make eviction never stop.
        return min(self.low.used_bytes(usage.usable), self.high_bytes(usage))

    def to_json(self, usage: DiskUsage | None = None) -> dict[str, object]:
        out: dict[str, object] = {"high": str(self.high), "low": str(self.low), "keep_releases": self.keep_releases,
                                  "build_cache_budget": self.build_cache_budget}
        if usage is not None:
            out["high_bytes"] = self.high_bytes(usage)
            out["low_bytes"] = self.low_bytes(usage)
        return out


@dataclass(frozen=True)
class DiskUsage:
    """The engine data root's filesystem: used and available bytes as ``df`` shows them."""

    used: int
    total: int
    free: int   # available to unprivileged writers (df "Avail")
    # The filesystem is read-only: a worn SD card, or ext4 after write errors (errors=remount-ro).
    read_only: bool = False

    @property
    def usable(self) -> int:
        return self.used + self.free if self.free or self.used else self.total

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.usable if self.usable else 0.0

    def after(self, delta: int) -> DiskUsage:
        """This usage with ``delta`` bytes more used (negative: freed)."""
        delta = max(-self.used, min(delta, self.free))
        return DiskUsage(self.used + delta, self.total, self.free - delta, self.read_only)

    def to_json(self) -> dict[str, object]:
        return {"used": self.used, "total": self.total, "free": self.free, "percent": round(self.percent, 1),
                "read_only": self.read_only}


@dataclass(frozen=True)
class ImageInfo:
    """One engine image as the disk policy sees it."""

    id: str
    size: int                 # bytes removing it is expected to free (its unique layers if known)
    owned: bool = False       # the stack's: by label, or recorded as pulled for it
    last_used: float = 0.0    # epoch seconds a container of the stack last ran it (0: never)
    created_at: float = 0.0
    tags: tuple[str, ...] = ()
    service: str = ""         # the service it was built or pulled for, when known


# The two cleanup actions. They are not planner actions: the disk guard plans them from
# this module and ``runtime.diskio.DiskIO`` executes them, so a stack plan never mixes them
# with container work.


@dataclass(frozen=True)
class EvictImage:
    """Remove an image the stack owns; never forced, so an image a container uses stays."""

    image_id: str
    size: int                      # bytes it is expected to free
    tags: tuple[str, ...] = ()
    reason: str = "lru"            # lru, stale-release, dangling, failed-build


@dataclass(frozen=True)
class PruneBuildCache:
    """Prune the engine's build cache down to ``keep`` bytes."""

    size: int = 0                  # bytes it is expected to free
    keep: int = 0


Eviction = EvictImage | PruneBuildCache


def lru_key(img: ImageInfo) -> tuple[float, float, str]:
    return (img.last_used or img.created_at, img.created_at, img.id)


def evictable(images: Iterable[ImageInfo], in_use: Iterable[str], protected: Iterable[str]) -> list[ImageInfo]:
    """The images a cleanup may remove, least recently used first."""
    keep = set(in_use) | set(protected)
    return sorted((i for i in images if i.owned and i.id not in keep), key=lru_key)


def plan_eviction(
    usage: DiskUsage,
    images: Sequence[ImageInfo],
    in_use: Iterable[str],
    protected: Iterable[str],
    policy: DiskPolicy,
    *,
    build_cache: int = 0,
    needed: int = 0,
    force: bool = False,
) -> list[Eviction]:
    """What to remove so that usage (plus ``needed`` bytes about to be written) gets ≤ low.

    Nothing is planned while usage is at or below the high watermark, unless ``force``
    (a build/pull is about to need ``needed`` bytes) — eviction is for pressure, not tidiness.
    Images go first (LRU), the build cache last: it is what makes the next rebuild fast.
    """
    high, low = policy.high_bytes(usage), policy.low_bytes(usage)
    projected = usage.used + max(0, needed)
    if projected <= low or (not force and usage.used <= high):
        return []
    out: list[Eviction] = []
    for img in evictable(images, in_use, protected):
        if projected <= low:
            break
        out.append(EvictImage(img.id, img.size, img.tags))
        projected -= img.size
    if projected > low and build_cache > 0:
        out.append(PruneBuildCache(build_cache))
    return out


def freed(evictions: Iterable[Eviction]) -> int:
    return sum(e.size for e in evictions)


def fits(usage: DiskUsage, needed: int, evictable_bytes: int, policy: DiskPolicy | None = None) -> bool:
    """Whether writing ``needed`` bytes keeps usage ≤ the high watermark, after evicting
    ``evictable_bytes`` at most (and never beyond the space physically free after eviction)."""
    policy = policy or DiskPolicy()
    after = usage.used - max(0, evictable_bytes) + max(0, needed)
    return after <= policy.high_bytes(usage) and needed <= usage.free + max(0, evictable_bytes)


def estimate_build(context_bytes: int, *, base_size: int = 0, base_present: bool = True,
                   previous_size: int | None = None) -> int:
    """Bytes a build is expected to write (a heuristic: nothing better exists before building).

    The context is sent to the engine and unpacked (×2). A missing base image has to be
    pulled (its size). The new layers: as big as the previous release's own layers if there
    is one (``previous_size - base_size``), else a fixed overhead.
    """
    own = DEFAULT_BUILD_OVERHEAD if previous_size is None else max(0, previous_size - base_size)
    return 2 * max(0, context_bytes) + (0 if base_present else max(0, base_size)) + own


def estimate_pull(image_size: int | None) -> int:
    """Bytes a pull is expected to write: compressed download plus unpacked layers (×2)."""
    return 2 * image_size if image_size else 2 * DEFAULT_BUILD_OVERHEAD


def releases_to_keep(images: Sequence[ImageInfo], current: Mapping[str, str], keep: int) -> set[str]:
    """Image ids of the ``keep`` most recent earlier releases of each service (for rollback).

    ``current`` maps each service to the image id of its current release; an earlier release
    is an owned image built or pulled for the same service, newest first by creation time.
    """
    out: set[str] = set()
    if keep <= 0:
        return out
    by_service: dict[str, list[ImageInfo]] = {}
    for img in images:
        if img.owned and img.service:
            by_service.setdefault(img.service, []).append(img)
    for service, imgs in by_service.items():
        now = current.get(service)
        older = sorted((i for i in imgs if i.id != now), key=lambda i: (i.created_at, i.id), reverse=True)
        out.update(i.id for i in older[:keep])
    return out


def stale_releases(images: Sequence[ImageInfo], current: Mapping[str, str], keep: int,
                   in_use: Iterable[str]) -> list[ImageInfo]:
    """Owned images of earlier releases beyond the ``keep`` newest per service (boot cleanup)."""
    protected = set(current.values()) | releases_to_keep(images, current, keep) | set(in_use)
    return sorted((i for i in images if i.owned and i.service and i.id not in protected), key=lru_key)
