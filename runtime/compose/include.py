"""``include``: other compose projects brought into this one.

Each entry names one file or a list of files merged like ``-f`` (compose-spec
``include.md``, compose-go ``loader/include.go``). The included model is read on its own:
its relative paths are relative to its project directory (the first file's directory, or
``project_directory``), its variables come from this project's environment plus its own
``.env`` (or ``env_file``), and it may include further files (a loop is an error). Its
services, volumes and networks are then added to this model; a name defined in both is
merged, this file's definition over the included one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from runtime.compose.merge import MergeIssues, merge_models
from runtime.compose.relpaths import rebase_service
from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict, LineList

_RESOURCES = ("services", "volumes", "networks")


@dataclass(frozen=True)
class IncludeEntry:
    paths: tuple[str, ...]      # absolute
    project_dir: str
    env_files: tuple[str, ...]  # absolute; () means the project directory's .env if there is one
    line: int | None


# (report, files, project directory, environment, .env files, chain of including files) -> model
ReadModel = Callable[[Report, tuple[str, ...], str, Mapping[str, str], tuple[str, ...], tuple[str, ...]],
                     "LineDict | None"]


def apply_include(report: Report, tree: LineDict, file: str, workdir: str, env: Mapping[str, str],
                  chain: tuple[str, ...], read_model: ReadModel) -> None:
    """Replace the ``include`` of ``tree`` (the file ``file``) by the resources it brings in."""
    if "include" not in tree:
        return
    entries = _entries(report, tree["include"], tree.line_of("include"), workdir)
    del tree["include"]
    for entry in entries:
        looping = [p for p in entry.paths if p in (*chain, file)]
        if looping:
            loop = " -> ".join(os.path.basename(p) for p in (*chain, file, looping[0]))
            report.error(f"'include' forms a loop: {loop}; break it", field="include", line=entry.line)
            continue
        missing = [p for p in entry.paths if not os.path.isfile(p)]
        if missing:
            report.error(f"the included file {missing[0]} does not exist; check the path", field="include",
                         line=entry.line)
            continue
        imported = read_model(report, entry.paths, entry.project_dir, env, entry.env_files, (*chain, file))
        if imported is None:
            continue
        _import(report, tree, imported, entry.project_dir)


def _entries(report: Report, value: Any, line: int | None, workdir: str) -> list[IncludeEntry]:
    if not isinstance(value, list):
        report.error(f"expected a list of files to include, found {value!r}", field="include", line=line)
        return []
    out: list[IncludeEntry] = []
    for index, item in enumerate(value):
        where = value.line_of(index) if isinstance(value, LineList) else line
        spec = LineDict({"path": item}) if isinstance(item, str) else item
        if not isinstance(spec, dict):
            report.error(f"expected a file path, or a mapping with 'path', found {item!r}", field="include",
                         line=where)
            continue
        paths = _strings(spec.get("path"))
        env_files = _strings(spec.get("env_file")) if spec.get("env_file") is not None else ()
        project_dir = spec.get("project_directory")
        for extra in spec:
            if extra not in ("path", "project_directory", "env_file"):
                report.warn(f"unknown key {extra!r} in 'include' is ignored", field="include", line=where)
        if not paths or env_files is None or (project_dir is not None and not isinstance(project_dir, str)):
            report.error("expected 'path' (a file or a list of files), and 'project_directory' and 'env_file' as "
                         "paths", field="include", line=where)
            continue
        absolute = tuple(os.path.normpath(os.path.join(workdir, os.path.expanduser(p))) for p in paths)
        directory = (os.path.dirname(absolute[0]) if project_dir is None
                     else os.path.normpath(os.path.join(workdir, project_dir)))
        envs = tuple(os.path.normpath(os.path.join(workdir, p)) for p in env_files if p != "/dev/null")
        out.append(IncludeEntry(absolute, directory, envs, where))
    return out


def _strings(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) and v for v in value):
        return tuple(value)
    return None


def _import(report: Report, tree: LineDict, imported: LineDict, project_dir: str) -> None:
    services = imported.get("services")
    if isinstance(services, dict):
        for node in services.values():
            rebase_service(node, project_dir)
    brought = LineDict({key: imported[key] for key in _RESOURCES if isinstance(imported.get(key), dict)})
    for key, defined in brought.items():
        own_defs = tree.get(key)
        for name in defined:
            if isinstance(own_defs, dict) and name in own_defs:
                # The spec warns about such conflicts; compose merges them, this file's side winning.
                line = own_defs.line_of(name) if isinstance(own_defs, LineDict) else None
                where = {"service": name} if key == "services" else {"field": f"{key}.{name}"}
                report.warn(f"the {key[:-1]} '{name}' is also defined by an included file; this file's settings "
                            "are merged over the included ones", line=line, **where)
    own = LineDict({key: tree[key] for key in _RESOURCES if key in tree})
    own.key_lines.update({k: v for k, v in tree.key_lines.items() if k in own})
    issues = MergeIssues()
    merged = merge_models(brought, own, issues)
    for path, line, message in issues.found:
        report.error(message, service=path[1] if path[0] == "services" and len(path) > 1 else None,
                     field=".".join(path[2:] if path[0] == "services" else path) or None, line=line)
    for key in _RESOURCES:
        if key in merged:
            tree[key] = merged[key]
            if key in merged.key_lines:
                tree.key_lines.setdefault(key, merged.key_lines[key])
