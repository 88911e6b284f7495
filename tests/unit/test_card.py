"""The host side of the SD card's faults (harness.card): commands and counters, without a device."""

from __future__ import annotations

import pytest

from harness.card import Card, bandwidth_command, errors_command, latency_command, parse_state
from harness.errors import FaultError
from harness.protocol import ExecResult

CTL = """power=on
readonly=0
latency_ms=20.000
bandwidth=1048576
read_errors=none
write_errors=range
size=1073741824
dirty_bytes=69632
lost_bytes=0
flushed_bytes=1712128
reads=58
writes=137
fsyncs=75
writebacks=75
errors=3
"""


def test_parse_state_reads_counters_and_the_mount() -> None:
    st = parse_state(CTL, "rw,relatime,errors=remount-ro")
    assert (st.power, st.read_only, st.latency_ms, st.bandwidth) == ("on", False, 20.0, 1 << 20)
    assert (st.write_errors, st.dirty_bytes, st.errors, st.mounted_read_only) == ("range", 69632, 3, False)
    assert parse_state(CTL, "ro,relatime,errors=remount-ro").mounted_read_only
    # "errors=remount-ro" holds "ro" as a substring but is no read-only flag.
    assert not parse_state(CTL, "rw,errors=remount-ro").mounted_read_only
    # Newer kernels keep the mount rw and flag the filesystem instead.
    assert parse_state(CTL, "rw,relatime,errors=remount-ro,emergency_ro").mounted_read_only


def test_parse_state_names_what_is_missing() -> None:
    with pytest.raises(ValueError, match="dirty_bytes"):
        parse_state(CTL.replace("dirty_bytes=69632\n", ""), "rw")


def test_commands_are_checked() -> None:
    assert latency_command(12.5) == "latency 12.5"
    assert bandwidth_command(0) == "bandwidth 0"
    assert errors_command("write", after=3) == "errors write after 3"
    assert errors_command("read", range=(4096, 8192)) == "errors read range 4096 8192"
    for bad in (lambda: latency_command(-1), lambda: bandwidth_command(-5),
                lambda: errors_command("write"), lambda: errors_command("write", after=1, range=(0, 1)),
                lambda: errors_command("read", range=(10, 10)), lambda: errors_command("erase", after=1)):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            bad()


class FakeDevice:
    """A device shell that answers like an engine container with or without cardfs."""

    name = "dev"

    def __init__(self, has_card: bool, ro_after_heal: bool = False) -> None:
        self.has_card = has_card
        self.ro = ro_after_heal
        self.commands: list[str] = []
        self.reboots = 0

    def shell(self, cmd: str, check: bool = True) -> ExecResult:
        self.commands.append(cmd)
        if not self.has_card:
            return ExecResult(1, "sh: 1: cannot create /run/cardfs/ctl: Directory nonexistent")
        if " cat " in cmd:
            return ExecResult(0, CTL + ("ro,relatime" if self.ro else "rw,relatime") + "\n")
        return ExecResult(0, "")

    def reboot(self) -> None:
        self.reboots += 1
        self.ro = False


def test_card_without_controller_says_why() -> None:
    card = Card(FakeDevice(has_card=False))
    assert not card.available()
    with pytest.raises(FaultError, match="no controller"):
        card.latency(5)


def test_heal_reboots_only_a_read_only_filesystem() -> None:
    for ro in (False, True):
        dev = FakeDevice(has_card=True, ro_after_heal=ro)
        state = Card(dev).heal(dev.reboot)
        assert dev.reboots == int(ro) and not state.mounted_read_only
        assert any("'heal'" in c for c in dev.commands)
