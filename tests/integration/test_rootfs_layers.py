"""The python stand-in's rootfs made as a layer on the debian one is the rootfs a direct bootstrap makes.

Differential, on emulated arm64: :func:`harness.images.rootfs_tarball` (debian rootfs, then the
python packages installed on its tree) against one mmdebstrap run of minbase + the python packages,
from the same mirror a few minutes apart. Every path, its type, mode, owner, link target and
content must match, and apt's automatic marks too. Minutes of emulation: full matrix only.
"""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import tarfile
from pathlib import Path

import pytest

from harness import images
from harness.arch import get_arch

pytestmark = [pytest.mark.full,
              pytest.mark.skipif(os.geteuid() != 0 or images._installed_bootstrapper() != "mmdebstrap",
                                 reason="needs root and mmdebstrap")]

ARM64 = get_arch("arm64")
# dpkg's backup of its previous status: which install came last differs by construction.
SKIP = {"./var/lib/dpkg/status-old", "./var/lib/apt/extended_states"}


def _tree(tarball: Path) -> dict[str, tuple[object, ...]]:
    entries: dict[str, tuple[object, ...]] = {}
    with tarfile.open(tarball) as tar:
        for member in tar:
            if member.name in SKIP:
                continue
            digest = ""
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256(handle.read()).hexdigest()
            entries[member.name] = (member.type, member.mode, member.uid, member.gid, member.linkname, digest)
    return entries


def _member(tarball: Path, name: str) -> bytes:
    with tarfile.open(tarball) as tar:
        handle = tar.extractfile(name)
        assert handle is not None
        return handle.read()


def _marks(text: str) -> set[tuple[str, str, str]]:
    stanzas = (dict(line.split(": ", 1) for line in block.splitlines()) for block in text.split("\n\n") if block)
    return {(s["Package"], s.get("Architecture", ""), s.get("Auto-Installed", "0")) for s in stanzas}


def test_the_layered_python_rootfs_is_what_a_direct_bootstrap_makes(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMSTACK_CACHE", str(tmp_path / "cache"))
    python = images.BASES["python"]
    layered = images.rootfs_tarball(ARM64, python.packages, python=True)
    assert images.rootfs_path(ARM64, images.BASES["debian"].packages).exists()   # made on the way

    direct = tmp_path / "direct.tar"
    cmd = images.bootstrap_command("mmdebstrap", ARM64, python.packages, True, direct, images.mirror())
    subprocess.run(["env", f"TMPDIR={tmp_path}", *cmd], check=True, capture_output=True)

    ours, theirs = _tree(layered), _tree(direct)
    assert sorted(set(ours) ^ set(theirs)) == []
    assert [name for name in ours if ours[name] != theirs[name]] == []
    extended = "./var/lib/apt/extended_states"
    assert _marks(_member(layered, extended).decode()) == _marks(_member(direct, extended).decode())
    # py_compile's own byte code is the real module's (its header records the source's size).
    pyc = _member(layered, "./usr/lib/python3.11/__pycache__/py_compile.cpython-311.pyc")
    source = _member(layered, "./usr/lib/python3.11/py_compile.py")
    assert struct.unpack("<I", pyc[12:16])[0] == len(source)
