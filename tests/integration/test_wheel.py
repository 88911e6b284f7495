"""The runtime image builds from an installed wheel, not only from a checkout.

A wheel has no repository around it: the Dockerfile travels as a data file and the runtime
package is the installed one. The wheel is installed into a scratch directory and imported
from there by a separate interpreter, outside the checkout.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from harness import images

docker = pytest.importorskip("docker")

ROOT = Path(__file__).resolve().parents[2]

BUILD = textwrap.dedent("""
    import json, sys
    import harness, harness.images as im
    dockerfile, package = im.runtime_sources()
    tag = im.build_runtime("arm64", tag=sys.argv[1])
    print(json.dumps({"harness": harness.__file__, "dockerfile": str(dockerfile), "package": str(package),
                      "hash": im.runtime_source_hash(), "tag": tag}))
""")


def _pip(*args: str, cwd: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args], cwd=cwd,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_runtime_image_builds_from_an_installed_wheel(tmp_path: Path) -> None:
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("armstack-*.whl")
    site = tmp_path / "site"
    _pip("install", "--no-deps", "--target", str(site), str(wheel), cwd=tmp_path)

    client = docker.from_env()
    tag = f"armstack-test/runtime-from-wheel:{uuid.uuid4().hex[:8]}"
    try:
        res = subprocess.run([sys.executable, "-c", BUILD, tag], cwd=tmp_path, capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(site)}, timeout=1800)
        assert res.returncode == 0, res.stdout + res.stderr
        out = json.loads(res.stdout.strip().splitlines()[-1])
        # Everything came from the wheel, and it is what a checkout builds: the same sources.
        for key in ("harness", "dockerfile", "package"):
            assert out[key].startswith(str(site)), (key, out[key])
        assert out["hash"] == images.runtime_source_hash()
        assert out["tag"] == tag

        help_text = client.containers.run(tag, ["--help"], remove=True, platform="linux/arm64").decode()
        assert "validate" in help_text and "apply" in help_text
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(tag, force=True)


def test_the_plugin_of_a_wheel_without_extras_breaks_no_pytest_run(tmp_path: Path) -> None:
    """``pip install armstack`` (no ``[harness]`` extra: no testcontainers, no rich) still loads the
    ``pytest11`` entry point in every pytest run; an empty folder must collect nothing (exit 5),
    not abort with an import error."""
    _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(ROOT), cwd=tmp_path)
    (wheel,) = (tmp_path / "dist").glob("armstack-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    # pip's own configuration (the machine's index) applies; only pytest besides the wheel's own
    # dependencies (docker, PyYAML).
    res = subprocess.run([python, "-m", "pip", "--disable-pip-version-check", "-q", "install", "pytest", str(wheel)],
                         cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout + res.stderr
    present = subprocess.run([python, "-c", "import importlib.util as u; print(u.find_spec('testcontainers'))"],
                             capture_output=True, text=True, timeout=60)
    assert present.stdout.strip() == "None", "the venv is meant to lack the [harness] extra"

    empty = tmp_path / "empty"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "TESTCONTAINERS_RYUK_DISABLED")}
    res = subprocess.run([python, "-m", "pytest", "--co", "-p", "no:cacheprovider"], cwd=empty, env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 5, res.stdout + res.stderr   # pytest.ExitCode.NO_TESTS_COLLECTED
    assert "armstack" in subprocess.run([python, "-m", "pytest", "--trace-config", "--co", "-p", "no:cacheprovider"],
                                        cwd=empty, env=env, capture_output=True, text=True, timeout=300).stdout
