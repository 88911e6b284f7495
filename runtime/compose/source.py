"""What a stack is loaded from: the compose files, project name, profiles and variables."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 64          # override files or profiles in one source read from JSON
_PROFILE = re.compile(r"^[A-Za-z0-9*][A-Za-z0-9_.-]{0,127}$")


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

    def with_env(self, env: Mapping[str, str] | None) -> StackSource:
        """The same source read with the variables ``env``."""
        return dataclasses.replace(self, env=env)

    def pinned(self, paths: Sequence[str]) -> StackSource:
        """This source as another process must read it: ``paths`` (its files, found and made
        absolute by the caller) and the profiles enabled here named, so a supervisor with its
        own environment loads the stack as this process would. ``COMPOSE_PROFILES`` is read from
        ``env`` (a source without one has only its given profiles)."""
        from runtime.compose.profiles import active_profiles

        return dataclasses.replace(self, paths=tuple(paths), profiles=active_profiles(self.profiles, self.env or {}))

    def cli_args(self) -> list[str]:
        """The ``armstack`` options that name this source: ``-f`` per file, ``-p``, ``--profile`` each."""
        args = [arg for p in self.paths for arg in ("-f", p)]
        if self.project:
            args += ["-p", self.project]
        return args + [arg for p in self.profiles for arg in ("--profile", p)]

    # -- the JSON form handed between processes (an apply request) -------------------------------

    def to_json(self) -> dict[str, Any]:
        """Files, project and profiles; the variables stay behind (the reader uses its own)."""
        return {"paths": list(self.paths), "project": self.project, "profiles": list(self.profiles)}

    @classmethod
    def from_json(cls, doc: Any) -> StackSource:
        """The source in ``doc`` (files absolute); ValueError (a sentence) for anything but that schema."""
        if not isinstance(doc, dict):
            raise ValueError("'source' must be a JSON object")
        paths, project, profiles = doc.get("paths"), doc.get("project"), doc.get("profiles", [])
        if (not isinstance(paths, list) or not 1 <= len(paths) <= MAX_LISTED + 1
                or not all(isinstance(f, str) and os.path.isabs(f) and "\0" not in f for f in paths)):
            raise ValueError(f"'source.paths' must be a list of 1 to {MAX_LISTED + 1} absolute paths")
        if project is not None and not isinstance(project, str):
            raise ValueError("'source.project' must be a string or null")
        if (not isinstance(profiles, list) or len(profiles) > MAX_LISTED
                or not all(isinstance(p, str) and _PROFILE.match(p) for p in profiles)):
            raise ValueError(f"'source.profiles' must be a list of at most {MAX_LISTED} profile names")
        return cls(tuple(paths), project, tuple(profiles))
