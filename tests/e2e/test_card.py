"""The SD card as a board suffers it: a power cut loses what no flush reached; a card that fails or
turns read-only is reported by the runtime, the stack runs on where it can, and heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.device import EmulatedDevice
from harness.errors import FaultError
from harness.waits import wait_for
from runtime.state import ApplyResult
from tests.e2e.conftest import hits

# Written by the minimal stack's server (its /data is a named volume on the card): one file with
# fsync of the file and of its directory, then ten files nobody fsyncs, right before the cut.
SYNCED = ("import os\n"
          "with open('/data/synced', 'w') as f:\n"
          "    f.write('acknowledged\\n'); f.flush(); os.fsync(f.fileno())\n"
          "fd = os.open('/data', os.O_RDONLY | os.O_DIRECTORY); os.fsync(fd); os.close(fd)\n")
UNSYNCED = "for i in 0 1 2 3 4 5 6 7 8 9; do echo unsynced-$i > /data/unsynced-$i; done"


def _needs_card_cache(device: EmulatedDevice) -> None:
    try:
        device.card_state()
    except FaultError as e:
        pytest.skip(str(e))


def _card_status(device: EmulatedDevice) -> dict[str, object]:
    return dict((device.status() or {}).get("disk") or {})


def test_power_cut_loses_what_no_flush_reached(arm_device: EmulatedDevice, stacks: Path,
                                               request: pytest.FixtureRequest) -> None:
    _needs_card_cache(arm_device)
    arm_device.deploy(stacks / "minimal")
    arm_device.wait_until_running("client", timeout=60)
    wait_for(lambda: hits(arm_device) >= 3, arm_device.timeout(20), "the client to register hits")
    res = arm_device.exec("server", ["python3", "-c", SYNCED])
    assert res.exit_code == 0, res.output
    res = arm_device.exec("server", UNSYNCED)
    assert res.exit_code == 0, res.output
    counted = hits(arm_device)   # the server fsyncs its count and (now) its directory: it must survive

    arm_device.power_cut()
    cut = arm_device.last_power_cut
    # What the cache dropped; most un-fsynced data never even left ext4's page cache (delayed
    # allocation), which the cut loses as well: the files below are the measure.
    assert cut is not None and cut.power == "off", cut
    arm_device.wait_until_running("server", timeout=90)
    arm_device.wait_until_running("client", timeout=90)

    assert arm_device.exec("server", "cat /data/synced").output == "acknowledged\n"
    intact = arm_device.exec("server", "cat /data/unsynced-* 2>/dev/null | grep -c '^unsynced-' || true")
    survivors = int(intact.output.strip() or 0)
    # The report's properties (pytest's record_property warns under the default xunit2 JUnit XML).
    request.node.user_properties += [("card_lost_bytes", cut.lost_bytes), ("unsynced_files_intact", survivors)]
    print(f"power cut: card cache dropped {cut.lost_bytes} bytes; {survivors}/10 un-fsynced files intact",
          flush=True)
    assert survivors < 10, "a power cut lost none of ten files written without fsync right before it"
    assert hits(arm_device) >= counted
    # The runtime's own state survived and it brought the stack back by itself: its boot apply
    # finishes after the engine may already have restarted the containers, so wait for its answer.
    def boot_apply() -> ApplyResult | None:
        status = arm_device.status_document()
        return None if status is None else status.last_apply

    assert arm_device.wait_for(boot_apply, 90, "the runtime's apply after the power cut").ok
    assert {"server", "client"} <= set(arm_device.services())


def test_power_cut_without_loss_keeps_unsynced_writes(arm_device: EmulatedDevice) -> None:
    _needs_card_cache(arm_device)
    arm_device.shell("for i in 0 1 2; do echo kept-$i > /data/kept-$i; done")
    arm_device.power_cut(lose_unsynced=False)
    assert arm_device.last_power_cut is None
    assert arm_device.shell("cat /data/kept-0 /data/kept-1 /data/kept-2").output.split() == \
        ["kept-0", "kept-1", "kept-2"]


@pytest.mark.full
@pytest.mark.parametrize("fault", ["read-only", "write-errors"])
def test_failing_card_is_reported_and_heals(arm_device: EmulatedDevice, stacks: Path, fault: str) -> None:
    _needs_card_cache(arm_device)
    arm_device.deploy(stacks / "minimal")
    arm_device.wait_until_running("client", timeout=60)
    wait_for(lambda: hits(arm_device) >= 2, arm_device.timeout(20), "the client to register hits")
    if fault == "read-only":
        arm_device.card_read_only()
    else:
        arm_device.card_errors("write", after=0)

    # The server's next fsynced hit fails; ext4's journal write fails and it remounts read-only.
    arm_device.wait_for(lambda: arm_device.card_state().mounted_read_only, 60, "ext4 on the card to turn read-only")
    arm_device.wait_for(lambda: _card_status(arm_device).get("read_only") is True, 60,
                        "the runtime to report the card read-only",
                        describe=lambda: f"disk status: {_card_status(arm_device)}")
    assert any("SD card is read-only" in line for line in arm_device.logs())
    # The stack runs on: nothing restarts it on a card it cannot write.
    assert arm_device.find_container("server") is not None
    assert arm_device.find_container("client") is not None

    before = hits(arm_device)
    state = arm_device.heal_card()
    assert not state.mounted_read_only and state.errors == 0, state
    arm_device.wait_until_running("server", timeout=90)
    wait_for(lambda: hits(arm_device) > before, arm_device.timeout(30), "hits to be counted again after the heal")
    arm_device.wait_for(lambda: _card_status(arm_device).get("read_only") is False, 60,
                        "the runtime to report the card writable")


@pytest.mark.full
def test_slow_card_slows_fsync_and_heals(arm_device: EmulatedDevice) -> None:
    _needs_card_cache(arm_device)
    timed = "s=$(date +%s%N); echo x > /data/slow; sync /data/slow; echo $(( ($(date +%s%N) - s) / 1000000 ))"
    arm_device.card_latency(200)
    slow = int(arm_device.shell(timed).output.strip())
    assert arm_device.card_state().latency_ms == 200
    arm_device.heal_card()
    fast = int(arm_device.shell(timed).output.strip())
    assert slow >= 200 > fast or slow > 2 * fast, (slow, fast)
