"""The pytest plugin is loaded by every pytest run where armstack is installed: it must stay light.

Installed without the ``[harness]`` extra (``pip install armstack``), the ``pytest11`` entry
point is still loaded; importing testcontainers there would abort every pytest run on that
machine. The wheel-level proof (a fresh venv, no extras, ``pytest --co``) is
``tests/integration/test_wheel.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness import reaper

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("docker", "testcontainers", "rich", "requests", "yaml", "harness.device", "harness.images")

PROBE = textwrap.dedent("""
    import json, os, sys
    before = dict(os.environ)
    import harness.plugin
    heavy = sorted({m.split(".")[0] if not m.startswith("harness.") else m
                    for m in sys.modules if m.split(".")[0] in HEAVY or m in HEAVY})
    changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
    print(json.dumps({"heavy": heavy, "changed": changed}))
""")


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTCONTAINERS_", "ARMSTACK_"))}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def test_importing_the_plugin_imports_nothing_heavy_and_changes_no_environment(tmp_path: Path) -> None:
    res = _python(f"HEAVY = {HEAVY!r}\n" + PROBE, tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out == {"heavy": [], "changed": []}


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTCONTAINERS_", "ARMSTACK_"))}
    # The entry point installed with armstack loads the plugin, from this checkout (PYTHONPATH).
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                           "--co", "-q", *args], cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)


def test_an_empty_folder_collects_nothing_with_the_plugin_loaded(tmp_path: Path) -> None:
    res = _pytest(tmp_path)
    assert res.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, res.stdout + res.stderr


@pytest.mark.parametrize(("arch", "says"), [("arm64,sparc", "unknown architecture 'sparc'"),
                                            (",", "names no architecture")])
def test_a_bad_arch_is_a_usage_error_before_collection(tmp_path: Path, arch: str, says: str) -> None:
    (tmp_path / "test_x.py").write_text("def test_x():\n    pass\n")
    res = _pytest(tmp_path, f"--arch={arch}")
    assert res.returncode == pytest.ExitCode.USAGE_ERROR, res.stdout + res.stderr
    assert says in res.stderr and "--arch" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_reaper_is_off_only_while_the_kit_starts_a_container() -> None:
    config = SimpleNamespace(ryuk_disabled=False)
    with reaper.reaper_disabled(config):
        assert config.ryuk_disabled is True
        with reaper.reaper_disabled(config):   # a second device starting meanwhile
            assert config.ryuk_disabled is True
        assert config.ryuk_disabled is True    # the first one is still starting
    assert config.ryuk_disabled is False       # the user's own setting is back


def test_a_failed_start_gives_the_setting_back() -> None:
    config = SimpleNamespace(ryuk_disabled=True)
    with pytest.raises(RuntimeError), reaper.reaper_disabled(config):
        config.ryuk_disabled = True
        raise RuntimeError("engine gone")
    assert config.ryuk_disabled is True
    config.ryuk_disabled = False
    with pytest.raises(RuntimeError), reaper.reaper_disabled(config):
        raise RuntimeError("engine gone")
    assert config.ryuk_disabled is False
