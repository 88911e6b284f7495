"""E2E tests run on emulated ARM devices (the armstack pytest plugin provides the fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.fixture
def stacks() -> Path:
    return STACKS


@pytest.fixture
def arm_device(arm_device: Any) -> Any:
    """The plugin's device, its runtime without a global probation: these tests time updates, and
    a deploy would otherwise wait out 60 s of probation. The rollback test turns probation on for
    its service with the ``io.armstack.probation`` label."""
    arm_device.runtime_env.setdefault("ARMSTACK_PROBATION", "0")
    return arm_device


def hits(device: Any) -> int:
    """The minimal stack's hit counter, kept on its named volume (0 before the first hit)."""
    out = device.exec("server", "cat /data/hits 2>/dev/null || echo 0").output.strip()
    return int(out or 0)
