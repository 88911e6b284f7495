"""Tiny images from the host's own binaries (there is no registry to pull a base image from)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def shared_libs(binary: str) -> list[str]:
    """The libraries ``binary`` loads, as the paths ``ldd`` printed (where the loader looks)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for ln in out.splitlines():
        parts = ln.split()
        path = parts[2] if "=>" in parts and len(parts) > 2 else parts[0]
        if path.startswith("/"):
            libs.append(path)
    return libs


def copy_binaries(root: Path, binaries: dict[str, str]) -> None:
    """``binaries`` (path in the image -> host binary) and their libraries into ``root``, as real files."""
    files = dict(binaries)
    for b in binaries.values():
        files.update({lib.lstrip("/"): lib for lib in shared_libs(b)})
    for dst, src in files.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(src).resolve(), root / dst)
