"""The recovery report gathers rows from every test, also from pytest-xdist workers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INNER = """
import pytest

@pytest.mark.parametrize("fault", ["sigkill", "oom", "reboot", "power_cut"])
def test_fault(record_recovery, fault):
    record_recovery({"stack": "s", "fault": fault, "arch": "arm64", "seconds": 1.5, "bound": 60})

def test_other(request):
    request.node.user_properties.append(("something-else", 1))
"""


XDIST = pytest.param(["-n", "2"], id="xdist", marks=pytest.mark.skipif(
    importlib.util.find_spec("xdist") is None, reason="pytest-xdist is not installed"))


@pytest.mark.parametrize("workers", [pytest.param([], id="serial"), XDIST])
def test_rows_of_every_test_reach_the_report(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                             workers: list[str]) -> None:
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_inner=INNER)
    (pytester.path / "reports").mkdir()
    earlier = {"other/reboot/armv7": {"stack": "other", "fault": "reboot", "arch": "armv7", "seconds": 9.0}}
    (pytester.path / "reports" / "recovery-times.json").write_text(json.dumps(earlier))

    result = pytester.runpytest_subprocess("-p", "tests.recovery_report", "-p", "no:cacheprovider",
                                           "--junitxml=junit.xml", *workers)

    result.assert_outcomes(passed=5, warnings=0)
    result.stdout.fnmatch_lines(["*recovery times*", "s * oom * arm64 * 1.5 * 60"])
    written = json.loads((pytester.path / "reports" / "recovery-times.json").read_text())
    # This run's rows only: a figure from an earlier run would read as measured now.
    assert sorted(written) == sorted(f"s/{f}/arm64" for f in ("sigkill", "oom", "reboot", "power_cut"))
