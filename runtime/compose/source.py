"""What a stack is loaded from: the compose files, project name, profiles and variables."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StackSource:
    """The inputs of one load, kept together so a reload reads the stack the same way.

    ``paths``: the compose files in merge order (``-f a -f b``), or one directory holding a
    compose file. ``profiles``: from ``--profile``; empty means ``COMPOSE_PROFILES``, if set.
    ``env``: the variables for interpolation; None means the process environment at load time.
    """

    paths: tuple[str, ...] = (".",)
    project: str | None = None
    profiles: tuple[str, ...] = ()
    env: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None,
           project: str | None = None, profiles: Sequence[str] = (),
           env: Mapping[str, str] | None = None) -> StackSource:
        if paths is None:
            listed: tuple[str, ...] = (".",)
        elif isinstance(paths, (str, os.PathLike)):
            listed = (os.fspath(paths),)
        else:
            listed = tuple(os.fspath(p) for p in paths) or (".",)
        return cls(listed, project, tuple(profiles), env)
