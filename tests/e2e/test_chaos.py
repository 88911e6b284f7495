"""The chaos soak on an emulated device: a seeded schedule of faults against the ledger stack.

The quick soak (``make test``) draws a short schedule; ``make soak`` runs 200 faults
(``ARMSTACK_SOAK_FAULTS``/``ARMSTACK_SOAK_SEED`` through ``--faults``/``--seed`` of
``armstack chaos``). Both hold the ledger to every record it acknowledged and every fault to
its convergence bound; the reports (events.json, junit.xml, timeline.png) go under reports/.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.chaos import soak
from harness.device import EmulatedDevice

REPORTS = Path(__file__).resolve().parents[2] / "reports" / "chaos"


# A short soak over fast faults of every layer (a process, the runtime, the network, the power): the
# full catalogue's slow ones (reboot, engine kill, crash loop) are left to ``make soak``.
QUICK_FAULTS = ("sigkill", "power_cut", "kill_runtime", "partition", "pause", "clock_jump")
QUICK_COUNT = 20


@pytest.mark.quick
def test_a_short_soak_loses_no_acknowledged_record(arm_device: EmulatedDevice, stacks: Path) -> None:
    result = soak(arm_device, stacks / "ledger", seed=20261202, faults=QUICK_COUNT, only=QUICK_FAULTS)
    paths = result.write(REPORTS / f"quick-{arm_device.arch.name}")
    assert paths["events"].is_file() and paths["junit"].is_file()
    assert len(result.steps) == QUICK_COUNT and {s.step.fault for s in result.steps} <= set(QUICK_FAULTS)
    assert result.verdict.acknowledged > 0
    result.assert_ok()
