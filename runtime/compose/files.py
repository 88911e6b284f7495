"""From compose files to one merged, interpolated tree (before any service is validated).

    for each file (``-f a -f b``, or an included project's files):
        parse (lines kept) ─ take out !reset/!override ─ interpolate ─ tag lines with the file
        ─ bring in ``include`` ─ resolve ``extends``
    merge the files in order (runtime.compose.merge), each file's !reset/!override first
    removing what earlier files defined at those paths

Every problem names the file it is in: lines carry their file (runtime.compose.origin).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.compose.env import parse_env
from runtime.compose.extends import Extender, ParsedFile
from runtime.compose.include import apply_include
from runtime.compose.interpolate import TreeIssue, interpolate_tree
from runtime.compose.merge import MergeIssues, merge_models, remove_path
from runtime.compose.origin import tag_origin
from runtime.compose.relpaths import rebase_service
from runtime.compose.report import Report
from runtime.compose.tags import strip_tags
from runtime.compose.textfiles import UnreadableFile, read_text_file
from runtime.compose.yamlnodes import LineDict, YamlSyntaxError, parse_yaml


@dataclass(frozen=True)
class ComposeText:
    """A compose file to read: its path, and its text when it is not to be read from disk."""

    path: str
    text: str | None = None


@dataclass
class ModelReader:
    report: Report
    _extends_files: dict[str, ParsedFile | None] = field(default_factory=dict)

    def read_model(self, files: Sequence[ComposeText], workdir: str, env: Mapping[str, str],
                   chain: tuple[str, ...] = ()) -> LineDict | None:
        """The files merged in order; None when one could not be parsed at all."""
        merged = LineDict()
        for source in files:
            parsed = self._read(source, workdir, env, chain)
            if parsed is None:
                return None
            for path in parsed.resets:
                remove_path(merged, path)
            issues = MergeIssues()
            merged = merge_models(merged, parsed.tree, issues) if merged else parsed.tree
            self._report_merge(issues)
        return merged

    def _included(self, report: Report, paths: tuple[str, ...], project_dir: str, env: Mapping[str, str],
                  env_files: tuple[str, ...], chain: tuple[str, ...]) -> LineDict | None:
        """An included project: its own directory, and its .env under this project's variables."""
        own = dict(env)
        for path in env_files or (os.path.join(project_dir, ".env"),):
            if env_files or os.path.isfile(path):
                own = {**read_env_file(report, path, own), **own}
        return self.read_model([ComposeText(p) for p in paths], project_dir, own, chain)

    def _read(self, source: ComposeText, workdir: str, env: Mapping[str, str],
              chain: tuple[str, ...]) -> ParsedFile | None:
        parsed = self._parse(source, env)
        if parsed is None:
            return None
        apply_include(self.report, parsed.tree, source.path, workdir, env, chain, self._included)
        Extender(self.report, lambda path: self._for_extends(path, env)).resolve_file(parsed)
        return parsed

    def _for_extends(self, path: str, env: Mapping[str, str]) -> ParsedFile | None:
        """Another file named by ``extends: {file: ...}``: its services with paths made absolute."""
        if path not in self._extends_files:
            parsed = self._parse(ComposeText(path), env)
            services = parsed.tree.get("services") if parsed else None
            if isinstance(services, dict):
                for node in services.values():
                    rebase_service(node, os.path.dirname(path))
            self._extends_files[path] = parsed
        return self._extends_files[path]

    def _parse(self, source: ComposeText, env: Mapping[str, str]) -> ParsedFile | None:
        report, path = self.report, source.path
        text = source.text
        if text is None:
            try:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError) as exc:
                report.error(f"the compose file {path} cannot be read ({exc})", file=path)
                return None
        try:
            tree = parse_yaml(text)
        except YamlSyntaxError as exc:
            report.error(str(exc), line=exc.line, file=path)
            return None
        if tree is None or (isinstance(tree, str) and not tree.strip()):
            report.error("the file is empty; expected a mapping with a 'services:' key", file=path)
            return None
        if not isinstance(tree, LineDict):
            report.error(f"expected a mapping with a 'services:' key at the top level, found {type(tree).__name__}",
                         line=1, file=path)
            return None
        stripped = strip_tags(tree)
        interpolated = interpolate_tree(stripped.value, env)
        for issue in interpolated.errors:
            report.error(issue.message, file=path, **_where(issue))
        for issue in interpolated.undefined:
            report.warn(issue.message, file=path, **_where(issue))
        top: LineDict = interpolated.value
        tag_origin(top, path)
        return ParsedFile(path, top, [*stripped.resets, *stripped.overrides])

    def _report_merge(self, issues: MergeIssues) -> None:
        for path, line, message in issues.found:
            service = path[1] if path[0] == "services" and len(path) > 1 else None
            rest = path[2:] if service else path
            self.report.error(message, service=service, field=".".join(rest) or None, line=line)


def read_env_file(report: Report, path: str, environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of a ``.env`` file (``environ`` resolves references in it); problems reported."""
    try:
        # Only a regular file of bounded size, opened without blocking (a FIFO, /dev/zero...).
        parsed = parse_env(read_text_file(path), environ.get, file_wins=False)
    except FileNotFoundError:
        return {}
    except UnreadableFile as exc:
        report.error(f"the .env file cannot be used: {exc}", file=path)
        return {}
    for line, message in parsed.problems:
        report.error(message, line=line, file=path)
    for line, name in parsed.undefined:
        report.warn(f"the variable {name} is not set; using an empty string", line=line, file=path)
    return dict(parsed.values)


def _where(issue: TreeIssue) -> dict[str, Any]:
    """Problem location (service, field, line) of something found at ``issue.path``."""
    path = issue.path
    if len(path) >= 2 and path[0] == "services":
        return {"service": path[1], "field": ".".join(path[2:]) or None, "line": issue.line}
    return {"field": ".".join(path) or None, "line": issue.line}
