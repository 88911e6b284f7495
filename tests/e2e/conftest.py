"""E2E tests run on emulated ARM devices (the armstack pytest plugin provides the fixtures)."""

from __future__ import annotations

from pathlib import Path

import pytest

STACKS = Path(__file__).resolve().parents[2] / "stacks"


@pytest.fixture
def stacks() -> Path:
    return STACKS
