"""Tar helpers for copying files into and out of containers through the engine API."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path


def tar_directory(src: Path, arcname: str) -> bytes:
    """A tar of ``src`` (file or directory) stored under ``arcname``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(str(src), arcname=arcname)
    return buf.getvalue()


def tar_bytes(name: str, data: bytes, *, mode: int = 0o644) -> bytes:
    """A tar holding one file ``name`` with ``data`` (owned by root, ``mode``)."""
    buf = io.BytesIO()
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def read_single_file(chunks: object) -> bytes:
    """The content of the one file in a ``get_archive`` stream."""
    data = b"".join(chunks)  # type: ignore[arg-type]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        member = next(m for m in tar.getmembers() if m.isfile())
        f = tar.extractfile(member)
        assert f is not None
        return f.read()
