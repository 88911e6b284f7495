"""Rebasing the relative paths of a service read from another directory.

A service brought in by ``extends: {file: ../base/compose.yaml}`` or by ``include`` wrote its
paths relative to *its* file; once merged into the main model they would be read relative to
the main file's directory. Like compose, they are made absolute first, against the directory
of the file that wrote them. Paths written in ``-f`` override files are not rebased: compose
reads them relative to the project directory (the first file's).
"""

from __future__ import annotations

import os
from typing import Any

from runtime.compose.yamlnodes import LineDict


def rebase_service(node: Any, basedir: str) -> None:
    """Make the relative host paths of one service definition absolute, in place."""
    if not isinstance(node, dict):
        return
    build = node.get("build")
    if isinstance(build, str):
        node["build"] = _local(build, basedir)
    elif isinstance(build, dict):
        if isinstance(build.get("context"), str):
            build["context"] = _local(build["context"], basedir)
        elif "context" not in build and "dockerfile_inline" not in build:
            # No context means '.', the directory of the file that wrote this build.
            build["context"] = basedir
            if isinstance(build, LineDict):
                build.key_lines["context"] = build.line  # type: ignore[assignment]
        contexts = build.get("additional_contexts")
        if isinstance(contexts, dict):
            for key, value in contexts.items():
                if isinstance(value, str) and not _is_reference(value):
                    contexts[key] = _local(value, basedir)
    env_file = node.get("env_file")
    if isinstance(env_file, str):
        node["env_file"] = _local(env_file, basedir)
    elif isinstance(env_file, list):
        for index, item in enumerate(env_file):
            if isinstance(item, str):
                env_file[index] = _local(item, basedir)
            elif isinstance(item, dict) and isinstance(item.get("path"), str):
                item["path"] = _local(item["path"], basedir)
    volumes = node.get("volumes")
    if isinstance(volumes, list):
        for index, item in enumerate(volumes):
            if isinstance(item, str) and item.startswith("."):
                source, sep, rest = item.partition(":")
                volumes[index] = _local(source, basedir) + sep + rest
            elif isinstance(item, dict) and item.get("type") == "bind" and isinstance(item.get("source"), str):
                item["source"] = _local(item["source"], basedir)
    extends = node.get("extends")
    if isinstance(extends, dict) and isinstance(extends.get("file"), str):
        extends["file"] = _local(extends["file"], basedir)


def _local(path: str, basedir: str) -> str:
    """``path`` made absolute against ``basedir``; absolute, home-relative and remote ones stay."""
    if not path or os.path.isabs(path) or path.startswith("~") or "://" in path or path.startswith(
            ("git@", "github.com/")):
        return path
    return os.path.normpath(os.path.join(basedir, path))


def _is_reference(value: str) -> bool:
    """``docker-image://...``, ``service:...`` and URLs are not directories."""
    return "://" in value or value.startswith("service:")
