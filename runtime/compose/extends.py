"""``extends``: a service built on another one, from the same file or from ``file:``.

Current compose semantics (compose-spec ``extends.md``, compose-go ``loader/extends.go``):
every key of the base service is inherited, ``depends_on`` included, and the extending
service is merged onto it with the ordinary merge rules (:mod:`runtime.compose.merge`);
``!reset`` / ``!override`` in the extending service apply to what it inherits. A base may
itself extend another service; a loop is an error. Relative paths of a base read from
another file are relative to that file (see :mod:`runtime.compose.relpaths`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.compose.merge import MergeIssues, clone, merge_service, remove_path
from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict


@dataclass
class ParsedFile:
    """One file, parsed, without its merge tags, interpolated, lines tagged with the file."""

    path: str
    tree: LineDict
    resets: list[tuple[str, ...]] = field(default_factory=list)  # paths of !reset and !override


ReadFile = Callable[[str], "ParsedFile | None"]


@dataclass
class Extender:
    report: Report
    read_file: ReadFile   # absolute path -> the file, for `extends: {file: ...}`
    done: dict[tuple[str, str], Any] = field(default_factory=dict)
    lines: dict[tuple[str, str], int | None] = field(default_factory=dict)  # where each `extends` is

    def resolve_file(self, parsed: ParsedFile) -> None:
        """Resolve every ``extends`` of the services of ``parsed``, in place."""
        services = parsed.tree.get("services")
        if not isinstance(services, dict):
            return
        for name in list(services):
            services[name] = self._resolve(parsed, str(name), ())

    def _resolve(self, parsed: ParsedFile, name: str, chain: tuple[tuple[str, str], ...]) -> Any:
        key = (parsed.path, name)
        if key in self.done:
            return self.done[key]
        services = parsed.tree["services"]
        node = services.get(name)
        if key in chain:
            first = chain[0]
            loop = " -> ".join(f"{s} ({os.path.basename(f)})" for f, s in (*chain, key))
            self.report.error(f"'extends' forms a loop: {loop}; break it", service=first[1], field="extends",
                              line=self.lines.get(first))
            return None
        if not isinstance(node, LineDict) or "extends" not in node:
            return node
        line = node.line_of("extends")
        self.lines[key] = line
        target = self._target(name, node["extends"], line, parsed.path)
        del node["extends"]
        if target is None:
            return node
        ref, ref_path = target
        if ref_path is not None and not os.path.isfile(ref_path):
            self.report.error(f"extends a service of {ref_path}, which does not exist; check the path",
                              service=name, field="extends", line=line)
            return node
        base_file = parsed if ref_path is None else self.read_file(ref_path)
        if base_file is None:
            return node
        base_services = base_file.tree.get("services")
        if not isinstance(base_services, dict) or ref not in base_services:
            where = "this file" if ref_path is None else ref_path
            self.report.error(f"extends the service '{ref}', which is not defined in {where}; check the name",
                              service=name, field="extends", line=line)
            return node
        base = self._resolve(base_file, ref, (*chain, key))
        if base is None:
            return node  # a loop, reported
        if not isinstance(base, dict):
            self.report.error(f"extends the service '{ref}', which is not a mapping of settings", service=name,
                              field="extends", line=line)
            return node
        inherited = clone(base)
        for path in parsed.resets:
            if path[:2] == ("services", name) and len(path) > 2:
                remove_path(inherited, path[2:])
        issues = MergeIssues()
        merged = merge_service(inherited, node, issues, name)
        merged.line = node.line
        for path, issue_line, message in issues.found:
            self.report.error(message, service=name, field=".".join(path[2:]) or None, line=issue_line or line)
        self.done[key] = merged
        services[name] = merged
        return merged

    def _target(self, name: str, value: Any, line: int | None, path: str) -> tuple[str, str | None] | None:
        """The (service, absolute file or None) an ``extends`` names, or None when it is wrong."""
        if isinstance(value, str) and value:
            return value, None
        if not isinstance(value, dict):
            self.report.error(f"expected the name of a service, or a mapping with 'service' (and 'file'), found "
                              f"{value!r}", service=name, field="extends", line=line)
            return None
        ref, file = value.get("service"), value.get("file")
        for extra in value:
            if extra not in ("service", "file"):
                self.report.warn(f"unknown key {extra!r} in 'extends' is ignored", service=name,
                                 field="extends", line=value.line_of(extra) if isinstance(value, LineDict) else line)
        if not isinstance(ref, str) or not ref:
            self.report.error("'extends' needs 'service': the name of the service to extend", service=name,
                              field="extends", line=line)
            return None
        if file is None:
            return ref, None
        if not isinstance(file, str) or not file:
            self.report.error(f"expected 'extends.file' to be a file path, found {file!r}", service=name,
                              field="extends.file", line=value.line_of("file") if isinstance(value, LineDict) else line)
            return None
        absolute = os.path.normpath(os.path.join(os.path.dirname(path), os.path.expanduser(file)))
        # `file:` naming the file itself is the same-file form.
        return ref, None if absolute == os.path.normpath(path) else absolute
