"""Build inputs: which files a build sends, and one hash over everything that shapes the image.

A service is rebuilt only when :func:`build_context_hash` changes; the executor stamps the
hash on the image (``labels.BUILD_HASH``) and the planner compares. The hash covers the files
of the context that ``.dockerignore`` lets through (relative path, type, permission bits,
contents or symlink target), the Dockerfile (even outside the context), build args, target,
and the ids of the base images (so a re-pulled ``FROM`` image rebuilds too).

``.dockerignore`` follows Docker's rules (moby/patternmatcher): one pattern a line, ``#``
comments, ``!`` re-includes, a leading ``/`` is ignored, ``*`` and ``?`` never match ``/``,
``**`` matches any number of directories, and a pattern matching a directory matches
everything below it. The last matching pattern decides.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.compose.model import BuildSpec
from runtime.hashing import HASH_LENGTH

_CHUNK = 1 << 16


@dataclass(frozen=True)
class IgnorePattern:
    text: str
    exclusion: bool        # True for "!pattern": re-include what matches
    regex: re.Pattern[str]

    def matches(self, path: str) -> bool:
        """True if ``path`` or one of its parent directories matches."""
        parts = path.split("/")
        return any(self.regex.fullmatch("/".join(parts[:i])) for i in range(len(parts), 0, -1))


def parse_dockerignore(text: str) -> list[IgnorePattern]:
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        line = _clean(line)
        if not line:
            continue
        patterns.append(IgnorePattern(raw.strip(), exclusion, re.compile(_translate(line))))
    return patterns


def is_ignored(path: str, patterns: list[IgnorePattern]) -> bool:
    """Whether a context-relative slash path is excluded (the last matching pattern wins)."""
    ignored = False
    for p in patterns:
        if p.matches(path):
            ignored = not p.exclusion
    return ignored


def _clean(pattern: str) -> str:
    # Like Go's filepath.Clean, then relative to the context root: "/a/./b/" -> "a/b".
    parts: list[str] = []
    for part in pattern.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


def _translate(pattern: str) -> str:
    """A Docker ignore pattern as a regex over slash paths."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):   # "**/": zero or more whole directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def _dockerfile_path(build: BuildSpec) -> Path:
    return Path(build.context, build.dockerfile)  # an absolute dockerfile replaces the context


def _walk(build: BuildSpec) -> Iterator[tuple[str, os.stat_result]]:
    """Context entries that would be sent, as (relative slash path, lstat), in sorted order."""
    root = Path(build.context)
    ignore_file = root / ".dockerignore"
    patterns = parse_dockerignore(ignore_file.read_text()) if ignore_file.is_file() else []
    # With no "!" pattern nothing below an excluded directory can come back, so skip its walk.
    can_reinclude = any(p.exclusion for p in patterns)
    # Docker sends these two even when .dockerignore names them (the build needs them).
    always = {".dockerignore"}
    dockerfile = _dockerfile_path(build).resolve()
    if dockerfile.is_relative_to(root.resolve()):
        always.add(dockerfile.relative_to(root.resolve()).as_posix())

    def walk(directory: Path, prefix: str) -> Iterator[tuple[str, os.stat_result]]:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            rel = prefix + entry.name
            st = entry.stat(follow_symlinks=False)
            ignored = rel not in always and is_ignored(rel, patterns)
            if not ignored:
                yield rel, st
            if stat.S_ISDIR(st.st_mode) and (not ignored or can_reinclude):
                yield from walk(Path(entry.path), rel + "/")

    yield from walk(root, "")


def context_files(build: BuildSpec) -> list[str]:
    """Relative slash paths of every entry the build sends (directories and symlinks too).

    Sorted; the executor adds each to the tar *non-recursively*. Parents of a re-included
    file inside an excluded directory are not listed (tar extraction creates them). The
    Dockerfile is listed when it lives in the context, ignored or not; one outside the
    context is not, and the executor must add it to the tar itself.
    """
    return [rel for rel, _ in _walk(build)]


def dockerfile_bases(text: str, args: Mapping[str, str] | None = None) -> list[str]:
    """Base image references of a Dockerfile's ``FROM`` lines, in order, without duplicates.

    ``ARG`` lines before the first ``FROM`` supply defaults for ``$X``/``${X}``/``${X:-d}``;
    ``args`` (build args) override them. ``scratch`` and earlier stage names are skipped.
    """
    given = dict(args or {})
    values: dict[str, str] = {}
    stages: set[str] = set()
    bases: list[str] = []
    seen_from = False
    for line in _instructions(text):
        words = line.split()
        keyword = words[0].upper()
        if keyword == "ARG" and not seen_from:
            for decl in words[1:]:
                name, eq, default = decl.partition("=")
                value = given.get(name, _strip_quotes(default) if eq else None)
                if value is not None:
                    values[name] = _substitute(value, values)
        elif keyword == "FROM":
            seen_from = True
            rest = [w for w in words[1:] if not w.startswith("--")]
            if not rest:
                continue
            ref = _substitute(rest[0], values)
            stages_name = rest[2].lower() if len(rest) >= 3 and rest[1].upper() == "AS" else None
            if ref.lower() not in stages and ref != "scratch" and ref not in bases:
                bases.append(ref)
            if stages_name:
                stages.add(stages_name)
    return bases


def _instructions(text: str) -> Iterator[str]:
    """Logical instruction lines: comments dropped, backslash continuations joined."""
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            continue  # comments (and parser directives) also inside continuations
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        if buf.strip():
            yield buf.strip()
        buf = ""
    if buf.strip():
        yield buf.strip()


_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::?-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def _substitute(value: str, values: Mapping[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain")
        if name in values and values[name] != "":
            return values[name]
        return m.group("default") or ""

    return _VAR.sub(repl, value)


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def build_context_hash(build: BuildSpec, base_image_ids: Mapping[str, str] | None = None) -> str:
    """Hash of all inputs of a build; equal hashes mean the build would produce the same image.

    ``base_image_ids`` maps ``FROM`` references to the ids the engine has for them; unknown
    references are left out (the next build pulls them and the hash then includes them).
    """
    h = hashlib.sha256()

    def field(tag: str, data: bytes) -> None:
        # Length-prefixed so no two different inputs concatenate to the same byte stream.
        h.update(f"{tag}:{len(data)}:".encode())
        h.update(data)

    field("schema", b"1")
    inline = build.dockerfile_inline
    dockerfile = inline.encode() if inline is not None else _dockerfile_path(build).read_bytes()
    field("dockerfile", dockerfile)
    for name, value in sorted(build.args):
        field("arg", f"{name}={value}".encode())
    field("target", (build.target or "").encode())
    # Only when set, so the hash of a build that uses none of them is what it always was.
    for name, value in sorted(build.labels):
        field("label", f"{name}={value}".encode())
    for host, address in build.extra_hosts:
        field("host", f"{host}={address}".encode())
    if build.shm_size is not None:
        field("shm_size", str(build.shm_size).encode())
    if build.network is not None:
        field("network", build.network.encode())
    known = base_image_ids or {}
    for ref in dockerfile_bases(dockerfile.decode(errors="replace"), dict(build.args)):
        if ref in known:
            field("base", f"{ref}={known[ref]}".encode())

    root = Path(build.context)
    for rel, st in _walk(build):
        mode = st.st_mode
        field("path", rel.encode())
        field("mode", f"{stat.S_IFMT(mode):o}:{stat.S_IMODE(mode):o}".encode())
        path = root / rel
        if stat.S_ISLNK(mode):
            field("link", os.readlink(path).encode())
        elif stat.S_ISREG(mode):
            h.update(f"file:{st.st_size}:".encode())
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    return h.hexdigest()[:HASH_LENGTH]
