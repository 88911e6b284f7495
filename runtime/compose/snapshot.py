"""A loaded stack as plain JSON and back: what a rollback returns to after the files changed.

A release shipped to a board usually replaces the previous one's files in place, so the
previous release can only be rolled back to if its *loaded* spec was kept. :func:`to_json`
turns a :class:`StackSpec` into JSON-able values (dataclasses as objects, tuples as lists) and
:func:`from_json` reads it back with the model's own type hints, so a field added to the model
reads as its default from an older snapshot.

Secret and config values (``FileObjectSpec.content``) are left out: the state file that keeps
snapshots must never hold a secret. A restored service gets those of the stack it is rolled
back within (runtime.rollback.rolled_back_stack), by name.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from typing import Any

from runtime.compose import model
from runtime.compose.model import StackSpec


def to_json(stack: StackSpec) -> dict[str, Any]:
    out = _plain(stack)
    assert isinstance(out, dict)
    return out


def from_json(data: object) -> StackSpec:
    """The stack in ``data``; ValueError (or TypeError) if it is not a snapshot of one."""
    stack = _read(StackSpec, data)
    if not isinstance(stack, StackSpec):
        raise ValueError("not a stack snapshot")
    return stack


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, bytes):
        return None   # a secret or config value: never written down
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def _read(tp: Any, value: Any) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in args if a is not type(None)]
        if len(options) != 1:
            raise TypeError(f"cannot read a value of {tp}")
        return _read(options[0], value)
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"{value!r} is not one of {args}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise TypeError(f"expected a list for {tp}, not {type(value).__name__}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], v) for v in value)
        if len(args) != len(value):
            raise ValueError(f"expected {len(args)} items for {tp}")
        return tuple(_read(a, v) for a, v in zip(args, value, strict=True))
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {tp.__name__}")
        hints = _hints(tp)
        return tp(**{f.name: _read(hints[f.name], value[f.name]) for f in dataclasses.fields(tp)
                     if f.name in value and f.init})
    if tp is bytes:
        return None
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise TypeError(f"expected {getattr(tp, '__name__', tp)}, not {value!r:.40}")
