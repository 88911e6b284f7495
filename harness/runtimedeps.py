"""The runtime image's Python dependencies, made on the host instead of under emulation.

The runtime's Dockerfile makes a venv and pip-installs ``docker`` and ``PyYAML`` into it. On an
emulated ARM stand-in that is most of a cold runtime image: measured on emulated arm64 (2 cores,
load 3-8), ``python3 -m venv`` alone took 60 s (ensurepip installs and byte-compiles pip) and
every pip start 12 s. A wheel is data, though: the host's pip downloads the target's wheels
(``--platform``), builds a pure one where the target has none (PyYAML on armv7; pip under
emulation fell back to the same pure build, the stand-in has no compiler), unpacks them into a
``site-packages`` tree and byte-compiles it when the host's Python is the image's version (a
``.pyc`` does not depend on the CPU). The harness then builds the Dockerfile on a base that
already has the venv (:func:`dockerfile`), which the Dockerfile uses as it is.

Trees are cached under ``~/.cache/armstack/runtime-deps`` by arch and requirements. Where the
host cannot make one (no pip, no network) the image installs its dependencies itself, slowly.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from harness.arch import Arch
from harness.errors import ImageBuildError

# The stand-in's Python (Debian bookworm's); its .pyc files are what the host compiles.
PYTHON = "3.11"
VENV = "/opt/armstack"
SITE = f"{VENV}/lib/python{PYTHON}/site-packages"
# Bump when the way a tree is made changes.
RECIPE = "1"
# glibc 2.36 in bookworm: every manylinux tag up to it fits (pip does not expand older ones).
_MANYLINUX = tuple(f"manylinux_2_{minor}" for minor in range(17, 37)) + ("manylinux2014",)
# What a pure build needs told so it does not try a C extension (no compiler for the target).
_PURE_BUILD_ENV = {"PYYAML_FORCE_LIBYAML": "0"}


def requirements(dockerfile: str) -> tuple[str, ...]:
    """The requirements the Dockerfile pip-installs into the runtime's venv (its quoted arguments):
    one list, in the file users build on a board."""
    for line in dockerfile.splitlines():
        if f"{VENV}/bin/pip install" in line:
            found = tuple(re.findall(r'"([^"]+)"', line))
            if found:
                return found
    raise ImageBuildError("the runtime's Dockerfile has no `pip install \"...\"` line for its venv")


def platforms(arch: Arch) -> tuple[str, ...]:
    """pip ``--platform`` tags of wheels that run on ``arch``'s stand-in."""
    return tuple(f"{tag}_{arch.uname}" for tag in _MANYLINUX)


def key(arch: Arch, wanted: Sequence[str]) -> str:
    text = "|".join([RECIPE, PYTHON, arch.name, *sorted(wanted)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dockerfile(base: str, compiled: bool) -> str:
    """The base image with the venv in place: a venv made by the stand-in's own Python (its paths
    are the image's), the tree copied into it."""
    compile_step = "" if compiled else f" && {VENV}/bin/python -m compileall -q {SITE}"
    return (f"FROM {base}\n"
            f"COPY site-packages {SITE}/\n"
            f"RUN python3 -m venv --without-pip {VENV}{compile_step}\n")


def _pip(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assign = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(["env", *assign, sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)


def _resolve(wanted: Sequence[str], work: Path) -> list[tuple[str, str]]:
    """(name, version) of every distribution ``wanted`` needs, resolved once on the host."""
    report = work / "report.json"
    done = _pip("install", "--dry-run", "--ignore-installed", "--report", str(report), *wanted)
    if done.returncode != 0:
        raise ImageBuildError(f"resolving {' '.join(wanted)} failed: {done.stderr.strip()[-500:]}")
    return [(item["metadata"]["name"], item["metadata"]["version"])
            for item in json.loads(report.read_text())["install"]]


def _fetch(arch: Arch, name: str, version: str, wheels: Path) -> None:
    """The target's wheel of ``name==version``; a pure wheel built here where there is none."""
    tags = [arg for tag in platforms(arch) for arg in ("--platform", tag)]
    done = _pip("download", "--no-deps", "--only-binary=:all:", *tags, "--python-version", PYTHON,
                "--implementation", "cp", "--abi", f"cp{PYTHON.replace('.', '')}", "--abi", "abi3",
                "--abi", "none", "-d", str(wheels), f"{name}=={version}")
    if done.returncode == 0:
        return
    built = _pip("wheel", "--no-deps", "--no-binary", name, "-w", str(wheels), f"{name}=={version}",
                 env=_PURE_BUILD_ENV)
    if built.returncode != 0:
        raise ImageBuildError(f"{name} {version}: no wheel for {arch.name} and no pure build: "
                              f"{built.stderr.strip()[-500:]}")
    made = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(name.lower().replace("-", "_"))]
    if not any(w.name.endswith("-none-any.whl") for w in made):
        raise ImageBuildError(f"{name} {version}: no wheel for {arch.name}, and the build here made "
                              f"{', '.join(w.name for w in made) or 'nothing'}, not a pure wheel")


def tree_path(arch: Arch, wanted: Sequence[str], cache: Path) -> Path:
    """Where the cache keeps the tree of ``wanted`` for ``arch`` (its ``site-packages`` inside)."""
    return cache / "runtime-deps" / f"{arch.name}-{key(arch, wanted)}"


def site_packages(arch: Arch, wanted: Sequence[str], cache: Path) -> tuple[Path, bool]:
    """A cached site-packages tree of ``wanted`` for ``arch``, and whether it is byte-compiled.

    Made in a temporary directory and renamed into place, so an interrupted run leaves nothing a
    later one would use. ImageBuildError when the host cannot make it.
    """
    out = tree_path(arch, wanted, cache)
    if not out.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            _make(arch, wanted, work)
            try:
                work.rename(out)
            except OSError:
                if not out.is_dir():   # else another process made it meanwhile: theirs is as good
                    raise
        except OSError as e:
            raise ImageBuildError(f"making the runtime's dependencies for {arch.name} failed: {e}") from e
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return out / "site-packages", (out / "compiled").exists()


def _make(arch: Arch, wanted: Sequence[str], work: Path) -> None:
    """``work/site-packages`` (and ``work/compiled`` when byte-compiled)."""
    wheels, tree = work / "wheels", work / "site-packages"
    for name, version in _resolve(wanted, work):
        _fetch(arch, name, version, wheels)
    tags = [arg for tag in platforms(arch) for arg in ("--platform", tag)]
    done = _pip("install", "--no-deps", "--no-compile", "--only-binary=:all:", *tags,
                "--python-version", PYTHON, "--implementation", "cp", "--target", str(tree),
                *map(str, sorted(wheels.glob("*.whl"))))
    if done.returncode != 0:
        raise ImageBuildError(f"unpacking the wheels for {arch.name} failed: {done.stderr.strip()[-500:]}")
    shutil.rmtree(wheels)
    # pip --target leaves a bin/ of console scripts with the host's paths: the image has no use for it.
    shutil.rmtree(tree / "bin", ignore_errors=True)
    if sys.version_info[:2] == tuple(map(int, PYTHON.split("."))):
        # unchecked-hash: valid whatever mtimes COPY gives the sources; -d: the image's paths.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode",
                        "unchecked-hash", "-d", SITE, str(tree)], check=True, capture_output=True)
        (work / "compiled").touch()
