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


HIT = r"hits: \d+"   # a line of the minimal stack's client that reached the server


def up_minimal(device: Any, stacks: Path) -> None:
    """Deploy the minimal stack and wait until the client reached the server once."""
    device.deploy(stacks / "minimal")
    for service in ("server", "client"):
        device.wait_until_running(service, timeout=120)
    device.wait_for_log("client", HIT, timeout=60, since="start")
