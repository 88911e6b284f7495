"""Build inputs: which files a build sends, and one hash over everything that shapes the image.

A service is rebuilt only when :func:`build_context_hash` changes; the executor stamps the
hash on the image (``labels.BUILD_HASH``) and the planner compares. The hash covers the files
of the context that ``.dockerignore`` lets through (relative path, type, permission bits,
contents or symlink target), the Dockerfile (even outside the context), build args, target,
and the ids of the base images (so a re-pulled ``FROM`` image rebuilds too).

``.dockerignore`` follows Docker's rules (moby/patternmatcher); see :mod:`runtime.dockerignore`.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path

from runtime.compose.model import BuildSpec
from runtime.dockerignore import IgnorePattern, is_ignored, parse_dockerignore
from runtime.hashing import HASH_LENGTH

__all__ = ["IgnorePattern", "build_context_hash", "context_files", "dockerfile_bases", "is_ignored",
           "parse_dockerignore"]

_CHUNK = 1 << 16
_UTF8_BOM = b"\xef\xbb\xbf"


def _dockerfile_path(build: BuildSpec) -> Path:
    return Path(build.context, build.dockerfile)  # an absolute dockerfile replaces the context


def _walk(build: BuildSpec) -> Iterator[tuple[str, os.stat_result]]:
    """Context entries that would be sent, as (relative slash path, lstat), in sorted order."""
    root = Path(build.context)
    ignore_file = root / ".dockerignore"
    patterns: list[IgnorePattern] = []
    if ignore_file.is_file():
        # Docker drops a byte order mark before the first pattern (or the pattern is lost), and
        # compares bytes: decoded like file names, undecodable bytes still match the same bytes.
        data = ignore_file.read_bytes().removeprefix(_UTF8_BOM)
        patterns = parse_dockerignore(os.fsdecode(data), source=str(ignore_file))
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
    dockerfile = _dockerfile_path(build).read_bytes()
    field("dockerfile", dockerfile)
    for name, value in sorted(build.args):
        field("arg", f"{name}={value}".encode())
    field("target", (build.target or "").encode())
    known = base_image_ids or {}
    for ref in dockerfile_bases(dockerfile.decode(errors="replace"), dict(build.args)):
        if ref in known:
            field("base", f"{ref}={known[ref]}".encode())

    root = Path(build.context)
    for rel, st in _walk(build):
        mode = st.st_mode
        field("path", os.fsencode(rel))
        field("mode", f"{stat.S_IFMT(mode):o}:{stat.S_IMODE(mode):o}".encode())
        path = root / rel
        if stat.S_ISLNK(mode):
            field("link", os.fsencode(os.readlink(path)))
        elif stat.S_ISREG(mode):
            h.update(f"file:{st.st_size}:".encode())
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    h.update(chunk)
    return h.hexdigest()[:HASH_LENGTH]
