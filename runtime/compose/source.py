"""What a stack is loaded from: the compose files, project name, profiles and variables.

Besides the files and the project, a source holds *selections*: lists of names that choose what
part of the files is the stack (``profiles``). Each is described once, in :data:`SELECTIONS`:
its command-line flag, the variable that stands in when none is given, its name pattern and how
the variable is read. The CLI builds its options from that table, the JSON form an apply request
and a snapshot carry lists them, :meth:`StackSource.cli_args` names them and
:meth:`StackSource.pinned` resolves them, so a new selection is one entry here (plus the field).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime.compose import profiles as profile_rules

MAX_LISTED = 64          # override files, or names of one selection, in one source read from JSON


@dataclass(frozen=True)
class Selection:
    """A list of names a source carries, as the command line and the environment give it."""

    field: str                      # the StackSource field (a tuple of names)
    flag: str                       # the CLI option, repeatable: --profile NAME
    metavar: str
    help: str
    variable: str                   # read when the flag is not given: COMPOSE_PROFILES=a,b
    variable_help: str              # the variable's line in the CLI's help
    pattern: re.Pattern[str]        # a valid name, as an apply request is checked
    # The names enabled: those given, else the variable's (from the variables a load reads).
    resolve: Callable[[Sequence[str], Mapping[str, str]], tuple[str, ...]]


SELECTIONS: tuple[Selection, ...] = (
    Selection("profiles", "--profile", "NAME", "enable the services of this profile (repeatable; "
              f"default: ${profile_rules.VARIABLE})", profile_rules.VARIABLE,
              "a,b: profiles enabled when no --profile is given (also read from .env)",
              re.compile(r"^[A-Za-z0-9*][A-Za-z0-9_.-]{0,127}$"), profile_rules.active_profiles),
)


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
           env: Mapping[str, str] | None = None, **selected: Sequence[str]) -> StackSource:
        """A source from loose values; ``selected``: the other selections by field name."""
        if paths is None:
            listed: tuple[str, ...] = (".",)
        elif isinstance(paths, (str, os.PathLike)):
            listed = (os.fspath(paths),)
        else:
            listed = tuple(os.fspath(p) for p in paths) or (".",)
        unknown = set(selected) - {s.field for s in SELECTIONS}
        if unknown:
            raise TypeError(f"no selection named {', '.join(sorted(unknown))} (see SELECTIONS)")
        names = {"profiles": profiles, **selected}
        fields: dict[str, Any] = {s.field: tuple(names.get(s.field) or ()) for s in SELECTIONS}
        return cls(listed, project, env=env, **fields)

    def with_env(self, env: Mapping[str, str] | None) -> StackSource:
        """The same source read with the variables ``env``."""
        return dataclasses.replace(self, env=env)

    def selected(self, selection: Selection) -> tuple[str, ...]:
        """The names of ``selection`` this source gives (before its variable is read)."""
        return tuple(getattr(self, selection.field))

    def pinned(self, paths: Sequence[str]) -> StackSource:
        """This source as another process must read it: ``paths`` (its files, found and made
        absolute by the caller) and the names each selection enables here given, so a supervisor
        with its own environment loads the stack as this process would. The variables
        (``COMPOSE_PROFILES``) are read from ``env`` (a source without one has only its given names)."""
        env = self.env or {}
        resolved: dict[str, Any] = {s.field: s.resolve(self.selected(s), env) for s in SELECTIONS}
        return dataclasses.replace(self, paths=tuple(paths), **resolved)

    def cli_args(self) -> list[str]:
        """The ``armstack`` options that name this source: ``-f`` per file, ``-p``, then each
        selection's flag per name (``--profile``)."""
        args = [arg for p in self.paths for arg in ("-f", p)]
        if self.project:
            args += ["-p", self.project]
        return args + [arg for s in SELECTIONS for name in self.selected(s) for arg in (s.flag, name)]

    # -- the JSON form handed between processes (an apply request) -------------------------------

    def to_json(self) -> dict[str, Any]:
        """Files, project and selections; the variables stay behind (the reader uses its own)."""
        return {"paths": list(self.paths), "project": self.project,
                **{s.field: list(self.selected(s)) for s in SELECTIONS}}

    @classmethod
    def from_json(cls, doc: Any) -> StackSource:
        """The source in ``doc`` (files absolute); ValueError (a sentence) for anything but that schema."""
        if not isinstance(doc, dict):
            raise ValueError("'source' must be a JSON object")
        paths, project = doc.get("paths"), doc.get("project")
        if (not isinstance(paths, list) or not 1 <= len(paths) <= MAX_LISTED + 1
                or not all(isinstance(f, str) and os.path.isabs(f) and "\0" not in f for f in paths)):
            raise ValueError(f"'source.paths' must be a list of 1 to {MAX_LISTED + 1} absolute paths")
        if project is not None and not isinstance(project, str):
            raise ValueError("'source.project' must be a string or null")
        selected: dict[str, Any] = {}
        for s in SELECTIONS:
            names = doc.get(s.field, [])
            if (not isinstance(names, list) or len(names) > MAX_LISTED
                    or not all(isinstance(n, str) and s.pattern.match(n) for n in names)):
                raise ValueError(f"'source.{s.field}' must be a list of at most {MAX_LISTED} names "
                                 f"as {s.flag} takes them")
            selected[s.field] = tuple(names)
        return cls(tuple(paths), project, **selected)
