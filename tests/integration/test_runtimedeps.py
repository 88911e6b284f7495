"""The runtime's dependencies made on the host for an ARM image: the target's wheels, not the host's.

Needs PyPI (as every cold setup does); no engine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness import runtimedeps
from harness.arch import ARCHES

REPO = Path(__file__).resolve().parents[2]
WANTED = runtimedeps.requirements((REPO / "Dockerfile").read_text())
ELF_MACHINE = {"arm64": 0xB7, "armv7": 0x28}


def _machines(tree: Path) -> set[int]:
    """The ELF machine of every extension module in the tree."""
    return {int.from_bytes(so.read_bytes()[18:20], "little") for so in tree.rglob("*.so")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


def test_arm_trees_hold_the_targets_wheels_compiled_for_the_images_python(cache):
    host_is_images_python = sys.version_info[:2] == (3, 11)
    for name in ("arm64", "armv7"):
        tree, compiled = runtimedeps.site_packages(ARCHES[name], WANTED, cache)
        assert (tree / "docker" / "__init__.py").is_file() and (tree / "yaml" / "__init__.py").is_file()
        # No host (x86_64) code: only the arch's own extension modules, or none.
        assert _machines(tree) <= {ELF_MACHINE[name]}
        assert not (tree / "bin").exists()
        assert compiled is host_is_images_python
        assert any(tree.rglob("*.cpython-311.pyc")) is host_is_images_python
    # arm64 has PyYAML's C extension as a wheel; armv7 has none on PyPI: the pure build, as pip made
    # it under emulation (the stand-in has no compiler).
    arm64, _ = runtimedeps.site_packages(ARCHES["arm64"], WANTED, cache)
    armv7, _ = runtimedeps.site_packages(ARCHES["armv7"], WANTED, cache)
    assert _machines(arm64) == {ELF_MACHINE["arm64"]}
    assert not list((armv7 / "yaml").glob("*.so"))


def test_a_tree_is_made_once_and_nothing_half_made_is_left(cache):
    first, _ = runtimedeps.site_packages(ARCHES["arm64"], WANTED, cache)
    stamp = first.stat().st_mtime_ns
    again, _ = runtimedeps.site_packages(ARCHES["arm64"], WANTED, cache)
    assert again == first and again.stat().st_mtime_ns == stamp
    # Only finished trees under their names: the temporary directories they were made in are gone.
    assert sorted(p.name for p in (cache / "runtime-deps").iterdir()) == sorted(
        f"{a}-{runtimedeps.key(ARCHES[a], WANTED)}" for a in ("arm64", "armv7"))
