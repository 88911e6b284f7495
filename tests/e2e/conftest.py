"""E2E tests run on emulated ARM devices (the armstack pytest plugin provides the fixtures)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.fixture
def stacks() -> Path:
    return STACKS


def hits(device: Any) -> int:
    """The minimal stack's hit counter, kept on its named volume (0 before the first hit)."""
    out = device.exec("server", "cat /data/hits 2>/dev/null || echo 0").output.strip()
    return int(out or 0)
