"""Measured recovery times of the fault scenarios: collected, printed and kept as JSON.

A scenario records its row with the ``record_recovery`` fixture, as a user property of its test
(pytest's own ``record_property`` warns under the default xunit2 JUnit XML). The row travels with the
test's report, so under pytest-xdist it reaches the controlling process too, which alone
gathers the rows, prints them at the end of the session and writes them to
``reports/recovery-times.json`` (keyed ``stack/fault/arch``). The file holds this run's rows only:
a figure left from an earlier run would read as measured now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

PROPERTY = "recovery"
REPORT = Path("reports") / "recovery-times.json"


@pytest.fixture
def record_recovery(request: pytest.FixtureRequest) -> Callable[[dict[str, Any]], None]:
    """Record one row (stack, fault, arch, seconds, bound) of the running test."""
    def record(row: dict[str, Any]) -> None:
        request.node.user_properties.append((PROPERTY, row))
    return record


class RecoveryReport:
    def __init__(self, path: Path = REPORT) -> None:
        self.path = path
        self.rows: dict[str, dict[str, Any]] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, row in report.user_properties:
            if name == PROPERTY:
                self.rows[f"{row['stack']}/{row['fault']}/{row['arch']}"] = dict(row)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.rows, indent=2, sort_keys=True) + "\n")
        terminalreporter.section("recovery times")
        terminalreporter.write_line(f"{'stack':14} {'fault':16} {'arch':6} {'seconds':>8}  {'bound':>6}")
        for row in sorted(self.rows.values(), key=lambda r: (r["stack"], r["fault"], r["arch"])):
            terminalreporter.write_line(f"{row['stack']:14} {row['fault']:16} {row['arch']:6} "
                                        f"{row['seconds']:8.1f}  {row['bound']:6.0f}")
        terminalreporter.write_line(f"written to {self.path.resolve()}")


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):   # xdist workers hand their rows on with the reports
        config.pluginmanager.register(RecoveryReport(), "armstack-recovery-report")
