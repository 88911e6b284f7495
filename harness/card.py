"""The SD card of an emulated device as a board suffers it: a volatile write cache and a failing card.

The card image is served to the device's loop device by ``cardfs`` (``harness/assets/cardfs.c``,
a FUSE filesystem in the engine container). Every write stays in cardfs's memory until the
card is flushed — ext4 sends a FLUSH on every journal commit and on ``fsync``, which the loop
driver passes on as an fsync of the image file — so a power cut that drops the cache loses
exactly what a board losing power loses: whatever no flush reached. The host side here only
sends cardfs one-line commands through its control file and reads its counters back.

=================================  =======================================  ==============================
fault                              what the card does                       what ext4 and the engine see
=================================  =======================================  ==============================
``power_cut()``                    drops the cache, then answers nothing    un-flushed writes lost; the
                                   until the device boots again             journal is replayed at boot
``card_latency(ms)``               sleeps before every request              slow I/O, nothing fails
``card_bandwidth(bytes_per_s)``    queues requests under a throughput cap   slow I/O, nothing fails
``card_errors("read"|"write")``    EIO for requests after N, or touching    I/O errors; a failed journal
                                   a byte range                             write turns ext4 read-only
``card_read_only()``               refuses every write with EIO             ext4 remounts read-only at its
                                                                            next commit (errors=remount-ro)
``heal_card()``                    clears every fault above                 a read-only ext4 needs a boot:
                                                                            the device reboots
=================================  =======================================  ==============================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from harness.errors import FaultError
from harness.protocol import ExecResult

CTL = "/run/cardfs/ctl"
# cardfs runs in a mount namespace of its own (see engine-entrypoint.sh): its files are seen there.
IN_CARDFS = "nsenter -t $(pgrep -xo cardfs) -m"
CARD_ROOT = "/var/lib/docker"   # the card's mount in the engine container (any of its mounts would do)
ErrorKind = Literal["read", "write"]


class CardHost(Protocol):
    """What the card's faults need of a device: a shell in its engine container."""

    name: str

    def shell(self, cmd: str, check: bool = True) -> ExecResult: ...


@dataclass(frozen=True)
class CardState:
    """cardfs's counters (bytes and requests since the device booted) and the card's mount."""

    power: str                 # "on", or "off" after a power cut until the next boot
    read_only: bool            # the card refuses writes (card_read_only)
    latency_ms: float
    bandwidth: int             # bytes per second; 0: no cap
    read_errors: str           # "none", "after" or "range"
    write_errors: str
    size: int
    dirty_bytes: int           # in the cache, not yet flushed: what a power cut now would lose
    lost_bytes: int            # dropped by power cuts
    flushed_bytes: int
    reads: int
    writes: int
    fsyncs: int
    errors: int                # requests answered with EIO
    mounted_read_only: bool    # ext4 went read-only (errors=remount-ro), as the engine sees it


def parse_state(ctl: str, mount_options: str) -> CardState:
    """cardfs's ``key=value`` lines and the card's mount options (the fourth field of /proc/mounts)."""
    values = dict(line.split("=", 1) for line in ctl.splitlines() if "=" in line)

    def num(key: str) -> int:
        try:
            return int(values[key])
        except (KeyError, ValueError):
            raise ValueError(f"cardfs status has no number {key!r}: {ctl.strip()[:300]!r}") from None

    try:
        latency = float(values.get("latency_ms", "0"))
    except ValueError:
        raise ValueError(f"cardfs status has a bad latency_ms: {ctl.strip()[:300]!r}") from None
    return CardState(
        power=values.get("power", "?"), read_only=values.get("readonly") == "1", latency_ms=latency,
        bandwidth=num("bandwidth"), read_errors=values.get("read_errors", "none"),
        write_errors=values.get("write_errors", "none"), size=num("size"), dirty_bytes=num("dirty_bytes"),
        lost_bytes=num("lost_bytes"), flushed_bytes=num("flushed_bytes"), reads=num("reads"),
        writes=num("writes"), fsyncs=num("fsyncs"), errors=num("errors"),
        mounted_read_only=read_only_options(mount_options))


def read_only_options(options: str) -> bool:
    """Whether mount options say the filesystem went read-only: ``ro``, or ext4's ``emergency_ro``
    (what newer kernels show after errors=remount-ro, keeping the mount itself ``rw``)."""
    return not {"ro", "emergency_ro"}.isdisjoint(options.split(","))


def latency_command(ms: float) -> str:
    if not 0 <= ms <= 60_000:
        raise ValueError(f"card latency must be 0..60000 ms, not {ms!r}")
    return f"latency {ms:g}"


def bandwidth_command(bytes_per_second: int) -> str:
    if bytes_per_second < 0:
        raise ValueError(f"card bandwidth must be >= 0 bytes/s (0: no cap), not {bytes_per_second!r}")
    return f"bandwidth {int(bytes_per_second)}"


def errors_command(kind: ErrorKind, *, after: int | None = None, range: tuple[int, int] | None = None) -> str:
    """The cardfs command for EIO on reads or writes: ``after`` N more good requests, or on a byte range."""
    if kind not in ("read", "write"):
        raise ValueError(f"card error kind must be 'read' or 'write', not {kind!r}")
    if (after is None) == (range is None):
        raise ValueError("give exactly one of after=N or range=(start, end)")
    if after is not None:
        if after < 0:
            raise ValueError(f"after must be >= 0, not {after}")
        return f"errors {kind} after {int(after)}"
    assert range is not None
    start, end = range
    if not 0 <= start < end:
        raise ValueError(f"range must be (start, end) byte offsets with 0 <= start < end, not {range!r}")
    return f"errors {kind} range {int(start)} {int(end)}"


class Card:
    """The card of one emulated device, driven through cardfs's control file."""

    def __init__(self, device: CardHost) -> None:
        self.device = device

    def available(self) -> bool:
        """Whether the card has its controller (not on a host without /dev/fuse, or ARMSTACK_CARD_CACHE=off)."""
        return self.device.shell(f"{IN_CARDFS} test -f {CTL}", check=False).exit_code == 0

    def send(self, command: str) -> None:
        # Commands are built from checked numbers and fixed words (above): nothing to quote.
        res = self.device.shell(f"{IN_CARDFS} sh -c \"echo '{command}' > {CTL}\"", check=False)
        if res.exit_code != 0:
            if not self.available():
                raise FaultError(f"the SD card of {self.device.name} has no controller (cardfs): the host "
                                 "lacks /dev/fuse or ARMSTACK_CARD_CACHE=off, so card faults cannot be injected")
            raise FaultError(f"the SD card of {self.device.name} refused `{command}`: {res.output.strip()}")

    def state(self) -> CardState:
        res = self.device.shell(f"{IN_CARDFS} cat {CTL} && awk '$2 == \"{CARD_ROOT}\" {{print $4}}' /proc/self/mounts",
                                check=False)
        if res.exit_code != 0:
            raise FaultError(f"the SD card of {self.device.name} has no controller (cardfs): {res.output.strip()}")
        lines = res.output.strip().splitlines()
        return parse_state("\n".join(lines[:-1]), lines[-1] if lines else "")

    def cut(self) -> CardState:
        """Drop the cache and stop answering (the first thing a power cut does); the state after it."""
        self.send("cut")
        return self.state()

    def sync(self) -> None:
        """Everything written so far onto the card: ext4's dirty pages, then the cache."""
        self.device.shell(f"sync -f {CARD_ROOT}; {IN_CARDFS} sh -c 'echo flush > {CTL}'", check=False)

    def latency(self, ms: float) -> None:
        self.send(latency_command(ms))

    def bandwidth(self, bytes_per_second: int) -> None:
        self.send(bandwidth_command(bytes_per_second))

    def errors(self, kind: ErrorKind, *, after: int | None = None, range: tuple[int, int] | None = None) -> None:
        self.send(errors_command(kind, after=after, range=range))

    def read_only(self) -> None:
        self.send("readonly")

    def heal(self, reboot: Callable[[], None]) -> CardState:
        """Clear every fault; a filesystem that went read-only comes back only through a boot (``reboot``)."""
        self.send("heal")
        state = self.state()
        if state.mounted_read_only:
            reboot()
            state = self.state()
        return state
