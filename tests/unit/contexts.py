"""Build contexts written to a temporary directory for the build-context tests."""

from __future__ import annotations

from pathlib import Path

from runtime.compose.model import BuildSpec

BASIC: dict[str, str | bytes] = {"Dockerfile": "FROM alpine:3.19\nCOPY . /app\n", "app.py": "print(1)\n"}


def make(root: Path, files: dict[str, str | bytes]) -> BuildSpec:
    """Write ``files`` (relative path -> text or bytes) under ``root``; the build of that context."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return BuildSpec(context=str(root))
