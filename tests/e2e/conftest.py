"""E2E tests run on emulated ARM devices (the armstack pytest plugin provides the fixtures)."""

from __future__ import annotations

import contextlib
import json
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


# -- measured recovery times ----------------------------------------------------------------------
RECOVERY_KEY = pytest.StashKey[dict[str, dict[str, Any]]]()
RECOVERY_REPORT = Path("reports") / "recovery-times.json"


@pytest.fixture(scope="session")
def recovery_times(request: pytest.FixtureRequest) -> dict[str, dict[str, Any]]:
    """Seconds from a fault to a recovered stack, per ``stack/fault/arch``: written to
    reports/recovery-times.json (merged with earlier runs) and printed at the end of the session."""
    return request.config.stash.setdefault(RECOVERY_KEY, {})


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    measured = config.stash.get(RECOVERY_KEY, {})
    if not measured:
        return
    merged: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        merged = json.loads(RECOVERY_REPORT.read_text())
    merged.update(measured)
    RECOVERY_REPORT.parent.mkdir(parents=True, exist_ok=True)
    RECOVERY_REPORT.write_text(json.dumps(merged, indent=2, sort_keys=True) + "\n")
    terminalreporter.section("recovery times")
    terminalreporter.write_line(f"{'stack':14} {'fault':16} {'arch':6} {'seconds':>8}  {'bound':>6}")
    for row in sorted(measured.values(), key=lambda r: (r["stack"], r["fault"], r["arch"])):
        terminalreporter.write_line(f"{row['stack']:14} {row['fault']:16} {row['arch']:6} "
                                    f"{row['seconds']:8.1f}  {row['bound']:6.0f}")
    terminalreporter.write_line(f"written to {RECOVERY_REPORT.resolve()}")
