"""YAML parsing that remembers where things were written.

Mappings become :class:`LineDict` and sequences :class:`LineList`: ordinary ``dict`` / ``list``
objects that also carry the 1-based line of each key or item, so every problem found later can
point at a line. Scalars stay plain Python values.

Two deliberate departures from PyYAML's YAML 1.1 defaults:

- base-60 numbers are not recognised: ``8080:80`` unquoted must stay the string a port mapping
  needs, not the integer 484880 (YAML 1.2, and docker compose, read it as a string);
- a key written twice in one mapping is reported (compose refuses it) instead of silently
  keeping the last value. Keys brought in by a merge key (``<<:``) may be overridden freely.

Aliases are bounded: a few hundred bytes of nested aliases ("billion laughs") expand to
billions of values for whatever walks the tree afterwards, so composing counts the nodes each
alias brings in and refuses the file beyond :data:`MAX_ALIAS_NODES`. Values the YAML layer
cannot build (an out-of-range ``\\U`` escape, the 13th month of a timestamp) are syntax
errors with their line, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"


class LineDict(dict[Any, Any]):
    """A mapping that knows its own line and the line of each of its keys."""

    line: int | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int | None:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence that knows its own line and the line of each item."""

    line: int | None = None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int | None:
        if 0 <= index < len(self.item_lines):
            return self.item_lines[index]
        return self.line


class DuplicateKey(Exception):
    def __init__(self, key: object, line: int, first: object, first_line: int):
        self.key = key
        self.line = line
        self.first = first
        self.first_line = first_line
        super().__init__(f"the key {key!r} is written twice in the same mapping (lines {first_line} and {line})")


# Values brought in through aliases, counted as expanded: far beyond what any hand-written
# sharing of settings needs, far below what makes walking the tree slow.
MAX_ALIAS_NODES = 100_000


MAX_FLOW_NESTING = 64


class AliasLimit(Exception):
    def __init__(self, line: int):
        self.line = line
        super().__init__(f"the aliases of this file expand to more than {MAX_ALIAS_NODES} values")


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 numbers, line-aware containers and bounded alias expansion."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._sizes: dict[int, int] = {}   # id(node) -> nodes in it once aliases are expanded
        self._through_aliases = 0

    building: Node | None = None   # the node being constructed, for the line of an error in it

    # The scanner's work per token grows with the flow nesting level ([[[...), so a few KB of
    # brackets would take seconds before the composer's recursion limit is even reached.
    def fetch_flow_sequence_start(self) -> None:
        self._check_flow_level()
        super().fetch_flow_sequence_start()

    def fetch_flow_mapping_start(self) -> None:
        self._check_flow_level()
        super().fetch_flow_mapping_start()

    def _check_flow_level(self) -> None:
        if self.flow_level >= MAX_FLOW_NESTING:
            raise yaml.scanner.ScannerError(
                None, None, f"[ and {{ nest more than {MAX_FLOW_NESTING} levels deep", self.get_mark()
            )

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        outer, self.building = self.building, node
        value = super().construct_object(node, deep)
        self.building = outer  # left pointing at the failing node when this raises
        return value

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(AliasEvent):
            event = self.peek_event()
            anchored = self.anchors.get(event.anchor)
            if anchored is not None:
                # An alias to a node still being composed (a recursive alias) counts as one.
                self._through_aliases += self._sizes.get(id(anchored), 1)
                if self._through_aliases > MAX_ALIAS_NODES:
                    raise AliasLimit(int(event.start_mark.line) + 1)
        node = super().compose_node(parent, index)
        if isinstance(node, SequenceNode):
            self._sizes[id(node)] = 1 + sum(self._sizes.get(id(child), 1) for child in node.value)
        elif isinstance(node, MappingNode):
            self._sizes[id(node)] = 1 + sum(
                self._sizes.get(id(k), 1) + self._sizes.get(id(v), 1) for k, v in node.value
            )
        return node


# Rebuild the implicit resolvers without the base-60 forms of int and float.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_INT_TAG, _FLOAT_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _INT_TAG,
    re.compile(
        r"""^(?:[-+]?0b[0-1_]+
        |[-+]?0[0-7_]+
        |[-+]?(?:0|[1-9][0-9_]*)
        |[-+]?0x[0-9a-fA-F_]+)$""",
        re.X,
    ),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
        |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _construct_map(loader: _Loader, node: MappingNode) -> Iterator[LineDict]:
    data = LineDict()
    data.line = _line(node)
    yield data
    own = [k for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge"]
    own_ids = {id(k) for k in own}
    loader.flatten_mapping(node)   # merged pairs first, then the mapping's own
    # Keys by the text they were written as: `1` and `'1'` (or `on` and `'on'`) are different
    # Python keys but one name to compose, which reads every key as a string.
    by_text: dict[Any, tuple[Any, bool]] = {}   # text -> (key, written in this mapping)
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError as exc:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", node.start_mark,
                "found an unhashable key (a mapping or list used as a key)", key_node.start_mark,
            ) from exc
        is_own = id(key_node) in own_ids
        text = key_node.value if isinstance(key_node, ScalarNode) else key
        for earlier_text in {text, key}:
            earlier = by_text.get(earlier_text)
            if earlier is None:
                continue
            earlier_key, earlier_own = earlier
            if is_own and earlier_own:
                raise DuplicateKey(key, _line(key_node), earlier_key, data.key_lines[earlier_key])
            if earlier_key in data and earlier_key != key:
                # A merged key is overridden by the mapping's own (or a later merge).
                del data[earlier_key]
                del data.key_lines[earlier_key]
        by_text[text] = by_text[key] = (key, is_own)
        data[key] = loader.construct_object(value_node, deep=True)
        data.key_lines[key] = _line(key_node)


def _construct_seq(loader: _Loader, node: SequenceNode) -> Iterator[LineList]:
    data = LineList()
    data.line = _line(node)
    yield data
    data.extend(loader.construct_object(child, deep=True) for child in node.value)
    data.item_lines = [_line(child) for child in node.value]


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


class YamlSyntaxError(Exception):
    """The text is not valid YAML; ``line`` is 1-based when known."""

    def __init__(self, message: str, line: int | None):
        self.line = line
        super().__init__(message)


def parse_yaml(text: str) -> Any:
    """Parse one YAML document into plain values, :class:`LineDict` and :class:`LineList`."""
    try:
        loader = _Loader(text)  # checks every character at once
    except yaml.reader.ReaderError as exc:
        raise YamlSyntaxError(
            f"this is not valid YAML (the character U+{exc.character:04X} cannot appear in it; remove it)",
            text.count("\n", 0, exc.position) + 1,
        ) from exc
    try:
        return loader.get_single_data()
    except AliasLimit as exc:
        raise YamlSyntaxError(
            f"{exc}; this looks like an alias bomb. Write the settings out, or share fewer of them", exc.line
        ) from exc
    except DuplicateKey as exc:
        lines = f"lines {exc.first_line} and {exc.line}"
        if exc.key == exc.first and type(exc.key) is type(exc.first):
            message = f"the key {exc.key!r} is written twice in the same mapping ({lines}); keep only one"
        else:
            message = (f"the keys {exc.first!r} and {exc.key!r} are the same name once read as text, as compose "
                       f"reads keys, and are both in this mapping ({lines}); keep only one")
        raise YamlSyntaxError(message, exc.line) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise YamlSyntaxError(
            f"this is not valid YAML ({what})", int(mark.line) + 1 if mark else None
        ) from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(f"this is not valid YAML ({exc})", None) from exc
    except RecursionError as exc:
        raise YamlSyntaxError("the YAML nests too deeply to read", _position(loader)) from exc
    except Exception as exc:  # noqa: BLE001 - a bad file must never become a traceback
        # Raised while scanning (a \\U escape beyond Unicode) or building a value an explicit
        # tag asks for (a timestamp with month 13 or none at all, bad base64): PyYAML lets
        # ValueError, TypeError, AttributeError... escape. Still the file's fault, at its line.
        why = str(exc) if isinstance(exc, (ValueError, OverflowError)) else \
            "a value does not have the form its tag (such as !!timestamp) requires"
        raise YamlSyntaxError(f"this is not valid YAML ({why})", _position(loader)) from exc
    finally:
        loader.dispose()


def _position(loader: _Loader) -> int | None:
    """1-based line of the node being built, else of the reader."""
    node = loader.building
    if node is not None:
        return _line(node)
    return int(loader.line) + 1


# The compose merge tags; what they mean is in runtime.compose.tags.
from runtime.compose.tags import construct_override, construct_reset  # noqa: E402 - needs _Loader above

_Loader.add_constructor("!reset", construct_reset)
_Loader.add_constructor("!override", construct_override)
