"""A thrown-away cache directory takes its card store's mount with it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from harness import cardstore


def test_nothing_mounted_nothing_to_do(tmp_path: Path) -> None:
    assert cardstore.unmount_store(tmp_path) is False
    (tmp_path / "cards").mkdir()   # a plain-directory store (no mkfs.xfs) is not a mount
    assert cardstore.unmount_store(tmp_path) is False


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_mounted_store_is_unmounted(tmp_path: Path) -> None:
    root = tmp_path / "cards"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "armstack-test", str(root)], check=True)
    try:
        assert cardstore.unmount_store(tmp_path) is True
        assert not os.path.ismount(root)
    finally:
        if os.path.ismount(root):
            subprocess.run(["umount", str(root)], check=False)
