"""Top-level pytest configuration: the test tier follows from the folder a test lives in."""

from __future__ import annotations

from pathlib import Path

import pytest

# The recovery report is a plugin of the top level so that the xdist controller loads it too.
pytest_plugins = ["pytester", "tests.recovery_report"]

_TIERS = {"unit": pytest.mark.unit, "integration": pytest.mark.integration, "e2e": pytest.mark.e2e}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for tier, mark in _TIERS.items():
            if tier in parts:
                item.add_marker(mark)
