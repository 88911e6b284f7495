"""The copyable example users start from (examples/test_my_stack.py) passes as they would run it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "test_my_stack.py"


@pytest.mark.quick
def test_example_passes_as_a_user_runs_it(tmp_path: Path) -> None:
    # A session of its own, as `pytest examples/test_my_stack.py` is: the plugin comes in through
    # its entry point, not through this session's fixtures.
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--arch", "arm64",
           "--armstack-reports", str(tmp_path / "reports"), str(EXAMPLE)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=EXAMPLE.parent, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout, proc.stdout
