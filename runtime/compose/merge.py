"""Merging compose models the way docker compose does (``-f a -f b``, ``extends``, ``include``).

The rules are compose's (compose-spec ``merge.md``, compose-go ``override/merge.go`` and
``override/uncity.go``), applied to parsed trees that keep their line numbers:

- mappings merge key by key, recursively; a scalar in the later file replaces the earlier one;
- sequences are appended, and for the keys below where an entry has an identity (a port, a
  mount target, a variable name...) a later entry replaces the earlier one with the same
  identity, in place;
- ``command``, ``entrypoint``, ``healthcheck.test`` and ``ulimits.*`` are replaced whole;
- ``environment``, ``labels``, ``build.args``... merge by key, whichever form (list of ``K=V``
  or mapping) each file used; ``depends_on`` and ``networks`` likewise by service / network
  name; ``build: ./dir`` is read as ``build: {context: ./dir}`` first;
- ``logging`` options merge only when both files name the same driver (or one names none).

Paths below are relative to a service (``services.NAME`` is stripped) or, for the top level,
start with ``volumes`` / ``networks``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from runtime.compose.yamlnodes import LineDict, LineList

Path = tuple[str, ...]


@dataclass
class MergeIssues:
    """Values of different kinds at the same place (a mapping over a list...): compose refuses them."""

    found: list[tuple[Path, int | None, str]] = field(default_factory=list)


def clone(node: Any) -> Any:
    """A deep copy of a parsed tree that keeps every line number (and file, see origin.py)."""
    if isinstance(node, dict):
        out = LineDict()
        out.line = getattr(node, "line", None)
        for key, value in node.items():
            out[key] = clone(value)
        out.key_lines.update(getattr(node, "key_lines", {}))
        return out
    if isinstance(node, list):
        seq = LineList(clone(v) for v in node)
        seq.line = getattr(node, "line", None)
        seq.item_lines = list(getattr(node, "item_lines", []))
        return seq
    return node


def merge_models(base: Any, over: Any, issues: MergeIssues) -> Any:
    """The top-level model ``over`` merged onto ``base`` (neither is changed)."""
    return _merge(base, over, (), issues)


def merge_service(base: Any, over: Any, issues: MergeIssues, name: str = "x") -> Any:
    """One service definition merged onto another (what ``extends`` does)."""
    return _merge(base, over, ("services", name), issues)


def remove_path(tree: Any, path: Path) -> None:
    """Delete the value at ``path`` from ``tree`` in place (``!reset`` / ``!override``)."""
    node = tree
    for key in path[:-1]:
        if not isinstance(node, dict) or key not in node:
            return
        node = node[key]
    if isinstance(node, dict) and path and path[-1] in node:
        del node[path[-1]]
        getattr(node, "key_lines", {}).pop(path[-1], None)


# ---- the rules -------------------------------------------------------------------------------

Merger = Callable[[Any, Any, Path, MergeIssues], Any]


def _merge(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    rule = _rule_for(path)
    if rule is not None:
        return rule(base, over, path, issues)
    if over is None:
        return clone(base)
    if isinstance(base, dict):
        if not isinstance(over, dict):
            return _conflict(base, over, path, issues)
        return _merge_mappings(base, over, path, issues)
    if isinstance(base, list):
        if not isinstance(over, list):
            return _conflict(base, over, path, issues)
        return _sequence(base, over, path)
    return clone(over)


def _conflict(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    kinds = {dict: "a mapping", list: "a list"}
    was = next((v for k, v in kinds.items() if isinstance(base, k)), "a single value")
    now = next((v for k, v in kinds.items() if isinstance(over, k)), "a single value")
    issues.found.append((path, getattr(over, "line", None),
                         f"cannot merge {now} over {was} defined earlier; write the same kind of value, "
                         "or mark this one '!override'"))
    return clone(over)


def _merge_mappings(base: dict[Any, Any], over: dict[Any, Any], path: Path, issues: MergeIssues) -> LineDict:
    out = clone(base)
    if isinstance(over, LineDict) and over.line is not None and out.line is None:
        out.line = over.line
    over_lines = getattr(over, "key_lines", {})
    for key, value in over.items():
        before = len(issues.found)
        out[key] = _merge(out[key], value, (*path, str(key)), issues) if key in out else clone(value)
        if key in over_lines:
            out.key_lines[key] = over_lines[key]
            # A scalar has no line of its own: point at its key (which knows its file).
            issues.found[before:] = [(p, line if line is not None else over_lines[key], message)
                                     for p, line, message in issues.found[before:]]
    return out


def _replace(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    return clone(over)


def _logging(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        driver, earlier = over.get("driver"), base.get("driver")
        if driver is None or earlier is None or driver == earlier:
            return _merge_mappings(base, over, path, issues)
    return clone(over if over is not None else base)


def _build(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    return _merge_mappings(_as_build(base), _as_build(over), path, issues)


def _as_build(value: Any) -> Any:
    if isinstance(value, dict):
        return value
    out = LineDict()
    if value is not None:
        out["context"] = value
    return out


def _by_key(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    """``environment``-like values: merged by name, as a mapping, whatever form each side used."""
    out = _key_mapping(base)
    for key, value in _key_mapping(over).items():
        out[key] = value
        out.key_lines[key] = _key_mapping_line(over, key)
    return out


def _key_mapping(value: Any) -> LineDict:
    out = LineDict()
    out.line = getattr(value, "line", None)
    if isinstance(value, dict):
        for key, item in value.items():
            out[key] = clone(item)
            line = getattr(value, "key_lines", {}).get(key)
            if line is not None:
                out.key_lines[key] = line
    elif isinstance(value, list):
        for index, item in enumerate(value):
            text = str(item)
            key, sep, rest = text.partition("=")
            out[key] = rest if sep else None
            line = value.line_of(index) if isinstance(value, LineList) else None
            if line is not None:
                out.key_lines[key] = line
    elif isinstance(value, str):
        key, sep, rest = value.partition("=")
        out[key] = rest if sep else None
    return out


def _key_mapping_line(value: Any, key: str) -> Any:
    return _key_mapping(value).key_lines.get(key, getattr(value, "line", None))


def _names(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    """``depends_on`` / ``networks``: a list of names is the mapping with default settings."""
    default: dict[str, Any] | None = ({"condition": "service_started", "required": True}
                                      if path[-1] == "depends_on" else None)
    return _merge_mappings(_name_mapping(base, default), _name_mapping(over, default), path, issues)


def _name_mapping(value: Any, default: dict[str, Any] | None) -> Any:
    if not isinstance(value, list):
        return value if isinstance(value, dict) else LineDict()
    out = LineDict()
    out.line = getattr(value, "line", None)
    for index, item in enumerate(value):
        out[item] = LineDict(default) if default is not None else None
        line = value.line_of(index) if isinstance(value, LineList) else None
        if line is not None:
            out.key_lines[item] = line
    return out


def _sequence(base: Any, over: Any, path: Path) -> LineList:
    """Append; where entries have an identity, a later one replaces the earlier in place."""
    first, second = _as_list(base), _as_list(over)
    identity = _IDENTITY.get(path[-1]) if len(path) == 3 and path[0] == "services" else None
    out = LineList()
    out.line = first.line if first.line is not None else second.line
    index_of: dict[Any, int] = {}
    for seq in (first, second):
        for index, item in enumerate(seq):
            line = seq.line_of(index)
            key = identity(item) if identity is not None else None
            if key is not None and key in index_of:
                out[index_of[key]] = clone(item)
                out.item_lines[index_of[key]] = line or 0
                continue
            if key is not None:
                index_of[key] = len(out)
            out.append(clone(item))
            out.item_lines.append(line or 0)
    return out


def _appended(base: Any, over: Any, path: Path, issues: MergeIssues) -> Any:
    """Values compose turns into a list before appending (``dns: 8.8.8.8`` is ``[8.8.8.8]``)."""
    return _sequence(base, over, path)


def _as_list(value: Any) -> LineList:
    if isinstance(value, LineList):
        return value
    out = LineList([] if value is None else value if isinstance(value, list) else [value])
    out.line = getattr(value, "line", None)
    return out


# ---- identities of sequence entries (override/uncity.go) -------------------------------------


def _same_text(item: Any) -> Any:
    return str(item) if not isinstance(item, (dict, list)) else None


def _env_file_path(item: Any) -> Any:
    return item.get("path") if isinstance(item, dict) else _same_text(item)


def _mount_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    if not isinstance(item, str):
        return None
    parts = item.split(":")
    return parts[1] if len(parts) >= 2 and parts[1].startswith("/") else parts[0]


def _device_target(item: Any) -> Any:
    if isinstance(item, dict):
        return item.get("target")
    parts = str(item).split(":")
    return parts[1] if len(parts) > 1 else parts[0]


def _port(item: Any) -> Any:
    if isinstance(item, dict):
        return (f"{item.get('host_ip', '0.0.0.0')}:{item.get('published')}:{item.get('target')}/"
                f"{item.get('protocol', 'tcp')}")
    return str(item)


_IDENTITY: dict[str, Callable[[Any], Any]] = {
    "ports": _port, "expose": _same_text, "volumes": _mount_target, "devices": _device_target,
    "cap_add": _same_text, "cap_drop": _same_text, "dns": _same_text, "dns_opt": _same_text,
    "dns_search": _same_text, "env_file": _env_file_path, "tmpfs": _same_text, "profiles": _same_text,
    "links": _same_text, "extra_hosts": _same_text, "secrets": _mount_target, "configs": _mount_target,
}

_SERVICE_RULES: dict[Path, Merger] = {
    ("build",): _build,
    ("build", "args"): _by_key,
    ("build", "labels"): _by_key,
    ("build", "additional_contexts"): _by_key,
    ("build", "extra_hosts"): _appended,
    ("command",): _replace,
    ("entrypoint",): _replace,
    ("healthcheck", "test"): _replace,
    ("depends_on",): _names,
    ("networks",): _names,
    ("environment",): _by_key,
    ("labels",): _by_key,
    ("annotations",): _by_key,
    ("sysctls",): _by_key,
    ("deploy", "labels"): _by_key,
    ("logging",): _logging,
    ("dns",): _appended,
    ("dns_opt",): _appended,
    ("dns_search",): _appended,
    ("env_file",): _appended,
    ("tmpfs",): _appended,
    ("extra_hosts",): _appended,
}


def _rule_for(path: Path) -> Merger | None:
    if len(path) >= 3 and path[0] == "services":
        inner = path[2:]
        if len(inner) == 2 and inner[0] == "ulimits":
            return _replace
        return _SERVICE_RULES.get(inner)
    if len(path) == 3 and path[0] in ("volumes", "networks") and path[2] == "labels":
        return _by_key
    return None
