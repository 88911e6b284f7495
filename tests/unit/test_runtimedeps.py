"""The runtime image's dependencies made on the host: what is read, asked for and written."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from harness import runtimedeps
from harness.arch import ARCHES
from harness.errors import ImageBuildError

REPO = Path(__file__).resolve().parents[2]


def test_the_dockerfile_installs_what_the_package_depends_on():
    """One list: the venv a board's `docker build` makes holds the package's own dependencies."""
    dockerfile = (REPO / "Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert runtimedeps.requirements(dockerfile) == tuple(project["dependencies"])


def test_a_dockerfile_without_the_venv_install_is_refused():
    with pytest.raises(ImageBuildError, match="pip install"):
        runtimedeps.requirements("FROM python:3.11\nRUN pip install flask\n")


@pytest.mark.parametrize("arch, machine", [("arm64", "aarch64"), ("armv7", "armv7l"), ("amd64", "x86_64")])
def test_platform_tags_cover_every_manylinux_up_to_bookworms_glibc(arch, machine):
    tags = runtimedeps.platforms(ARCHES[arch])
    assert f"manylinux2014_{machine}" in tags
    assert f"manylinux_2_17_{machine}" in tags and f"manylinux_2_36_{machine}" in tags
    assert f"manylinux_2_37_{machine}" not in tags   # newer than the stand-in's glibc
    assert all(tag.endswith(machine) for tag in tags)


def test_key_depends_on_arch_and_requirements_not_their_order():
    arm64, armv7 = ARCHES["arm64"], ARCHES["armv7"]
    assert runtimedeps.key(arm64, ["a", "b"]) == runtimedeps.key(arm64, ["b", "a"])
    assert runtimedeps.key(arm64, ["a"]) != runtimedeps.key(armv7, ["a"])
    assert runtimedeps.key(arm64, ["a>=1"]) != runtimedeps.key(arm64, ["a>=2"])


@pytest.mark.parametrize("compiled", [True, False])
def test_base_dockerfile_makes_the_venv_with_the_images_python(compiled):
    text = runtimedeps.dockerfile("armstack/python:x", compiled)
    assert text.startswith("FROM armstack/python:x\n")
    assert f"COPY site-packages {runtimedeps.SITE}/" in text
    assert f"python3 -m venv --without-pip {runtimedeps.VENV}" in text
    assert ("compileall" in text) is not compiled   # compiled on the host: not again under emulation
    # The Dockerfile's own install is skipped for such a base: it tests for this interpreter.
    assert f"[ -x {runtimedeps.VENV}/bin/python ]" in (REPO / "Dockerfile").read_text()
