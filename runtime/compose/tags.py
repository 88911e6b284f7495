"""The compose YAML tags ``!reset`` and ``!override``.

In a file merged over earlier ones (``-f a.yaml -f b.yaml``, ``extends``, ``include``):

- ``key: !reset null`` (any value) removes ``key`` from what the earlier files defined;
- ``key: !override value`` replaces the earlier value outright instead of merging with it
  (a list is not appended to, a mapping is not merged key by key).

Parsing turns the tags into :class:`Reset` / :class:`Override` markers; :func:`strip_tags`
takes them out again and returns where they were, so the merge can apply them as compose
does: the path is removed from the earlier model before this file is merged in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

Path = tuple[str, ...]


class Reset:
    """The value written with ``!reset``: whatever it was, the key is removed."""

    def __repr__(self) -> str:
        return "!reset"


@dataclass(frozen=True)
class Override:
    """A value written with ``!override``: it replaces the earlier value instead of merging."""

    value: Any


def construct_reset(loader: yaml.SafeLoader, node: yaml.Node) -> Reset:
    return Reset()


def construct_override(loader: yaml.SafeLoader, node: yaml.Node) -> Override:
    plain: yaml.Node
    # Build the value as if it had no tag: the same node content under the default tag.
    if isinstance(node, MappingNode):
        plain = MappingNode("tag:yaml.org,2002:map", node.value, node.start_mark, node.end_mark, node.flow_style)
    elif isinstance(node, SequenceNode):
        plain = SequenceNode("tag:yaml.org,2002:seq", node.value, node.start_mark, node.end_mark, node.flow_style)
    else:
        assert isinstance(node, ScalarNode)
        tag = loader.resolve(ScalarNode, node.value, (True, False))
        plain = ScalarNode(tag, node.value, node.start_mark, node.end_mark, node.style)
    return Override(loader.construct_object(plain, deep=True))


@dataclass
class Stripped:
    value: Any
    resets: list[Path] = field(default_factory=list)      # remove from the earlier model
    overrides: list[Path] = field(default_factory=list)   # remove from the earlier model, then merge


def strip_tags(tree: Any) -> Stripped:
    """``tree`` without markers (a copy where any were found), and the paths that carried them."""
    out = Stripped(None)

    def walk(node: Any, path: Path, active: frozenset[int]) -> Any:
        if isinstance(node, (dict, list)) and id(node) in active:
            return node  # a self-referencing alias: left for interpolation to report
        if isinstance(node, dict):
            # type(node)(): a LineDict stays one (this module is imported by the YAML loader, so
            # it cannot import the node classes itself).
            copy: Any = type(node)()
            copy.line = getattr(node, "line", None)
            lines = getattr(node, "key_lines", {})
            inner = active | {id(node)}
            for key, child in node.items():
                where = (*path, str(key))
                if isinstance(child, Reset):
                    out.resets.append(where)
                    continue
                if isinstance(child, Override):
                    out.overrides.append(where)
                    child = child.value
                copy[key] = walk(child, where, inner)
                if key in lines:
                    copy.key_lines[key] = lines[key]
            return copy
        if isinstance(node, list):
            seq: Any = type(node)()
            seq.line = getattr(node, "line", None)
            item_lines = getattr(node, "item_lines", [])
            inner = active | {id(node)}
            for index, child in enumerate(node):
                if isinstance(child, Reset):
                    continue
                if isinstance(child, Override):
                    child = child.value
                seq.append(walk(child, path, inner))
                if index < len(item_lines):
                    seq.item_lines.append(item_lines[index])
            return seq
        if isinstance(node, Reset):
            return None
        if isinstance(node, Override):
            return walk(node.value, path, active)
        return node

    out.value = walk(tree, (), frozenset())
    return out
