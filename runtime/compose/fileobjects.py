"""Secrets and configs as compose uses them without swarm: top-level sources, service mounts.

Top level (``secrets:`` / ``configs:``), each entry one source: ``file:`` (a host file,
bind-mounted read-only), ``environment:`` (the value of a variable where the stack is loaded)
or ``content:`` (inline text; configs only in the spec, accepted for both as compose does).
``external: true`` needs a swarm and is an error. In a service, ``secrets:`` / ``configs:`` list
names or ``{source, target, uid, gid, mode}``; a secret appears at ``/run/secrets/<target or
name>``, a config at its ``target`` (default ``/<name>``). The values themselves never reach a
message: errors name the entry, the variable or the file, not what they hold.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from typing import Any

from runtime.compose.coerce import FieldError, as_bool, as_map, as_str, describe
from runtime.compose.model import FileMount, FileObjectKind, FileObjectSpec
from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict

SECTIONS: dict[str, FileObjectKind] = {"secrets": "secret", "configs": "config"}
_SOURCES = ("file", "environment", "content")
_KNOWN = frozenset({*_SOURCES, "external", "name", "labels", "driver", "driver_opts", "template_driver"})
SECRETS_DIR = "/run/secrets"


def read_file_objects(report: Report, section: str, value: Any, line: int | None, workdir: str,
                      env: Mapping[str, str]) -> tuple[FileObjectSpec, ...]:
    """The top-level ``section`` ("secrets" or "configs")."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        report.error(f"expected a mapping of {section} names to their source, found {describe(value)}",
                     field=section, line=line)
        return ()
    node = value if isinstance(value, LineDict) else LineDict(value)
    found: list[FileObjectSpec] = []
    for key, settings in node.items():
        name = str(key)
        if name.startswith("x-"):
            continue
        where = f"{section}.{name}"
        key_line = node.line_of(key)
        try:
            obj = _read_one(report, SECTIONS[section], name, settings, where, key_line, workdir, env)
        except FieldError as exc:
            report.error(str(exc), field=where, line=exc.line or key_line)
            continue
        if obj is not None:
            found.append(obj)
    return tuple(found)


def _read_one(report: Report, kind: FileObjectKind, name: str, settings: Any, where: str, line: int | None,
              workdir: str, env: Mapping[str, str]) -> FileObjectSpec | None:
    spec = as_map(settings, f"the {kind}'s source (file, environment or content)")
    for key in spec:
        if str(key) not in _KNOWN and not str(key).startswith("x-"):
            report.warn(f"unknown key '{key}' is ignored", field=f"{where}.{key}", line=spec.line_of(key))
    if spec.get("external") is not None and as_bool(spec["external"], "true or false"):
        report.error(f"an external {kind} lives in a swarm, which a device does not run; give it a file, "
                     "environment or content source", field=f"{where}.external", line=spec.line_of("external"))
        return None
    given = [k for k in _SOURCES if spec.get(k) is not None]
    if len(given) != 1:
        report.error(f"a {kind} needs exactly one source of file, environment or content"
                     + (f", found {' and '.join(given)}" if given else ""), field=where, line=line)
        return None
    source = given[0]
    text = as_str(spec[source], f"the {source} of the {kind}")
    at = spec.line_of(source)
    if source == "file":
        path = os.path.normpath(os.path.join(workdir, os.path.expanduser(text)))
        if not os.path.isfile(path):
            report.error(f"the {kind} file {path} does not exist (or is not a regular file)",
                         field=f"{where}.file", line=at)
            return None
        return FileObjectSpec(name, kind, file=path)
    if source == "environment":
        if text not in env:
            report.error(f"the environment variable {text} that the {kind} reads is not set",
                         field=f"{where}.environment", line=at)
            return None
        return FileObjectSpec(name, kind, content=env[text].encode())
    return FileObjectSpec(name, kind, content=text.encode())


def parse_mount(kind: FileObjectKind, item: Any) -> FileMount:
    """One entry of a service's ``secrets:`` / ``configs:`` list (ValueError/FieldError if bad)."""
    if isinstance(item, str):
        return FileMount(item, default_target(kind, item))
    spec = as_map(item, f"a {kind} name, or a mapping with source, target, uid, gid and mode")
    for key in spec:
        if str(key) not in ("source", "target", "uid", "gid", "mode") and not str(key).startswith("x-"):
            raise FieldError(f"unknown key '{key}' (expected source, target, uid, gid, mode)", spec.line_of(key))
    if spec.get("source") is None:
        raise FieldError(f"a {kind} entry needs its 'source' (the top-level name)", spec.line)
    source = as_str(spec["source"], f"the {kind}'s top-level name")
    raw_target = spec.get("target")
    target = default_target(kind, source if raw_target is None else as_str(raw_target, "a path"))
    uid = None if spec.get("uid") is None else _id(spec["uid"], "uid")
    gid = None if spec.get("gid") is None else _id(spec["gid"], "gid")
    mode = None if spec.get("mode") is None else _mode(spec["mode"])
    return FileMount(source, target, uid, gid, mode)


def default_target(kind: FileObjectKind, target: str) -> str:
    """Where a mount appears: secrets under /run/secrets unless absolute; configs at /<target>."""
    if posixpath.isabs(target):
        return posixpath.normpath(target)
    base = SECRETS_DIR if kind == "secret" else "/"
    return posixpath.normpath(posixpath.join(base, target))


def _id(value: Any, what: str) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else as_str(value, f"a numeric {what}")
    if not text.isdigit():
        raise ValueError(f"{what} must be a number such as 1000, not {text!r}")
    return text


def _mode(value: Any) -> int:
    # YAML 1.1 reads 0440 as an octal number already; a string "0440" is octal too, as in compose.
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    else:
        text = as_str(value, "a file mode such as 0440")
        try:
            mode = int(text, 8)
        except ValueError:
            raise ValueError(f"mode must be octal permission bits such as 0440, not {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise ValueError(f"mode must be permission bits from 0 to 07777, not {oct(mode)}")
    return mode
