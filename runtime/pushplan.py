"""What ``armstack push`` sends, decided from plain data: the target, the release id, the diff.

A manifest maps each path of a release (relative, ``/``-separated) to an entry
``(kind, mode, value, size)``: kind ``f`` (a regular file; value its sha256), ``l`` (a symlink;
value its target) or ``d`` (an empty directory). The target keeps the manifest of its current
release; the sender compares it with the local one and sends only entries that differ, plus
the contents of the regular files among them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from runtime.compose.source import StackSource
from runtime.dockerignore import IgnorePattern, is_ignored
from runtime.errors import UsageError

Entry = tuple[str, int, str, int]
DEFAULT_BOARD_PATH = "/srv/stack"
SCHEME = "ssh://"
# A user or host never starts with '-': ssh would read it as an option.
_AUTHORITY = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                        r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_][A-Za-z0-9._-]*)(?P<rest>(?:[:/].*)?)$")


@dataclass(frozen=True)
class PushTarget:
    """Where a release goes: a board over ssh, or a directory on this machine (a mounted card)."""

    kind: Literal["ssh", "dir"]
    path: str
    host: str = ""
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        if self.kind == "dir":
            return self.path
        port = f":{self.port}" if self.port else ""
        return f"{SCHEME}{self.user + '@' if self.user else ''}{self.host}{port}{self.path}"

    @property
    def destination(self) -> str:
        """ssh's destination argument (``user@host``; brackets of an IPv6 address dropped)."""
        host = self.host[1:-1] if self.host.startswith("[") else self.host
        return f"{self.user}@{host}" if self.user else host


def parse_target(url: str | None, to_dir: str | None) -> PushTarget:
    """The target of ``push URL`` or ``push --to DIR``; UsageError naming what is wrong.

    ``ssh://[user@]host[:port][/path]`` or scp-like ``ssh://[user@]host:path`` (a path that is
    not all digits; relative to the login's home). No path: ``/srv/stack``.
    """
    if (url is None) == (to_dir is None):
        raise UsageError("push needs exactly one target: ssh://[user@]host[:path] or --to DIR")
    if to_dir is not None:
        if not to_dir or "\0" in to_dir:
            raise UsageError("--to needs a directory path")
        return PushTarget("dir", to_dir)
    assert url is not None
    if not url.startswith(SCHEME):
        raise UsageError(f"the push target {url!r} is not an ssh:// address; use ssh://[user@]host[:path] or --to DIR")
    m = _AUTHORITY.match(url[len(SCHEME):])
    if m is None:
        raise UsageError(f"cannot read the push target {url!r}: ssh://[user@]host[:port][/path] or "
                         "ssh://[user@]host:path, where a user or host may not start with '-'")
    rest, port, path = m.group("rest"), None, ""
    if rest.startswith(":"):
        digits = re.match(r"^(\d+)(/.*)?$", rest[1:])
        if digits:
            port, path = int(digits.group(1)), digits.group(2) or ""
            if not 0 < port < 65536:
                raise UsageError(f"the port {port} in {url!r} is not a TCP port (1-65535)")
        else:
            path = rest[1:]
    else:
        path = rest
    if "\0" in path or "\n" in path:
        raise UsageError(f"the path in {url!r} holds a control character")
    return PushTarget("ssh", path or DEFAULT_BOARD_PATH, m.group("host"), m.group("user"), port)


@dataclass(frozen=True)
class Selection:
    """Which paths of the stack directory a release holds.

    ``always``: shipped whatever an ignore file says (the compose files, ``.env``); ``ignore``:
    the patterns of ``.armstackignore``; ``contexts``: (a build context's directory relative to
    the stack, ``""`` for the stack itself; the entries its build sends, relative to it).
    """

    always: frozenset[str] = frozenset()
    ignore: tuple[IgnorePattern, ...] = ()
    contexts: tuple[tuple[str, frozenset[str]], ...] = ()

    def wanted(self, rel: str) -> bool:
        """Whether the path ``rel`` (relative to the stack) goes: not ignored, and inside a build
        context only if some context holding it sends it (a file the build leaves out is not needed)."""
        if rel in self.always:
            return True
        if self.ignore and is_ignored(rel, list(self.ignore)):
            return False
        inside = [(p, sent) for p, sent in self.contexts if not p or rel == p or rel.startswith(p + "/")]
        return not inside or any(rel == p or (rel[len(p) + 1:] if p else rel) in sent for p, sent in inside)


def release_id(manifest: Mapping[str, Entry]) -> str:
    """The release's id: a hash of its manifest, so the same files always make the same release."""
    text = json.dumps({p: list(e) for p, e in manifest.items()}, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Changes:
    """What a push sends: entries to set (``send``: the files whose contents go too) and paths to delete."""

    set: dict[str, Entry]
    delete: list[str]
    send: list[str]
    unchanged: int

    @property
    def content_bytes(self) -> int:
        return sum(self.set[p][3] for p in self.send)


def as_entry(value: object) -> Entry | None:
    """A target's manifest entry as an Entry, or None if it is not one (then it counts as changed)."""
    if (isinstance(value, list | tuple) and len(value) == 4 and isinstance(value[0], str)
            and type(value[1]) is int and isinstance(value[2], str) and type(value[3]) is int):
        return (value[0], value[1], value[2], value[3])
    return None


def diff(old: Mapping[str, object], new: Mapping[str, Entry]) -> Changes:
    """Changes that turn the target's release ``old`` into ``new``."""
    changed = {p: e for p, e in new.items() if as_entry(old.get(p)) != e}
    delete = sorted(p for p in old if p not in new)
    send = sorted(p for p, e in changed.items() if e[0] == "f")
    return Changes(changed, delete, send, len(new) - len(changed))


STACK_DIR_VARIABLE = "ARMSTACK_STACK_DIR"   # set by the receiver for the apply command: the target path


def apply_command(source: StackSource, armstack: str, data_dir: str | None = None) -> str:
    """The shell command that applies the pushed release on the target.

    ``source``: its files relative to the stack directory, its project and profiles as given
    here. ``armstack`` runs the CLI there (a shell command); the files are named through the
    stack directory as given (``$ARMSTACK_STACK_DIR/compose.yaml``), not the release it points
    to, so the project keeps the stack directory's name.
    """
    words = [armstack]
    if data_dir is not None:
        words += ["--data-dir", shlex.quote(data_dir)]
    # The files placed by the variable (quoted after it); the rest of the source's options as it
    # names them itself.
    placed = [f'"${STACK_DIR_VARIABLE}"/{shlex.quote(f)}' for f in source.paths]
    args = [shlex.quote(a) for a in dataclasses.replace(source, paths=()).cli_args()]
    words += [a for p in placed for a in ("-f", p)] + args
    return " ".join([*words, "apply"])
