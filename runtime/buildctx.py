"""Build inputs: which files a build sends, the tar stream that sends them, and one hash over
everything that shapes the image.

A service is rebuilt only when :func:`build_context_hash` changes; the executor stamps the
hash on the image (``labels.BUILD_HASH``) and the planner compares. The hash covers the files
of the context that ``.dockerignore`` lets through (relative path, type, permission bits,
contents or symlink target), the Dockerfile (even outside the context), build args, target,
and the ids of the base images (so a re-pulled ``FROM`` image rebuilds too).
:func:`context_tar` streams the same entries to the engine.

``.dockerignore`` follows Docker's rules (moby/patternmatcher); see :mod:`runtime.dockerignore`.
The walk is iterative (contexts may nest deeper than Python's recursion limit), skips
sockets as ``docker build`` does, reads files in chunks, and never opens a FIFO or device as
the Dockerfile or ``.dockerignore``. Whatever makes a context unusable raises
``BuildContextError`` (an ``EngineError``) naming the service: a failed build, not a crash.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from runtime.compose.model import BuildSpec
from runtime.dockerignore import IgnorePattern, is_ignored, parse_dockerignore
from runtime.errors import BuildContextError
from runtime.hashing import HASH_LENGTH

__all__ = [
    "MAX_DOCKERFILE_BYTES", "ContextStream", "IgnorePattern", "build_context_hash", "context_files", "context_tar",
    "dockerfile_bases", "is_ignored", "parse_dockerignore", "read_dockerfile",
]

_CHUNK = 1 << 18  # bytes read, hashed or sent at a time: memory stays flat whatever the file sizes
# A Dockerfile is text of a few KiB; the cap only stops a runaway file from filling memory.
MAX_DOCKERFILE_BYTES = 4 << 20
MAX_DOCKERIGNORE_BYTES = 4 << 20
_UTF8_BOM = b"\xef\xbb\xbf"
_TYPES = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a directory"}


def _whose(service: str | None) -> str:
    return f" of service {service!r}" if service else ""


def _read_small(path: Path, what: str, limit: int, service: str | None) -> bytes:
    """A small regular file's bytes, or ``BuildContextError``: a FIFO or device is refused
    before it is opened (reading one would wait for a writer or never end) and the size is capped."""
    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            kind = _TYPES.get(stat.S_IFMT(st.st_mode), "not a regular file")
            raise BuildContextError(
                f"The {what} {path}{_whose(service)} is not a regular file (it is {kind}); "
                "point the build at a regular file.", service=service, path=str(path))
        # O_NONBLOCK: should the path have become a FIFO since the stat, opening does not wait.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise BuildContextError(f"The {what} {path}{_whose(service)} is not a regular file.",
                                        service=service, path=str(path))
            data = f.read(limit + 1)
    except BuildContextError:
        raise
    except OSError as exc:
        raise BuildContextError(f"Could not read the {what} {path}{_whose(service)}: {exc.strerror or exc}.",
                                service=service, path=str(path)) from exc
    if len(data) > limit:
        raise BuildContextError(
            f"The {what} {path}{_whose(service)} is too large (over {limit >> 20} MiB); "
            "is it the right file?", service=service, path=str(path))
    return data


def _dockerfile_path(build: BuildSpec) -> Path:
    return Path(build.context, build.dockerfile)  # an absolute dockerfile replaces the context


def read_dockerfile(build: BuildSpec, *, service: str | None = None) -> bytes:
    """The Dockerfile's bytes; ``BuildContextError`` if it is missing, not a regular file or over
    ``MAX_DOCKERFILE_BYTES``. A ``dockerfile_inline`` is the text itself."""
    if build.dockerfile_inline is not None:
        return build.dockerfile_inline.encode()
    return _read_small(_dockerfile_path(build), "Dockerfile", MAX_DOCKERFILE_BYTES, service)


@dataclass(frozen=True)
class _Context:
    root: Path
    patterns: list[IgnorePattern]
    always: frozenset[str]   # sent even when .dockerignore names them
    service: str | None


def _open_context(build: BuildSpec, service: str | None) -> _Context:
    root = Path(build.context)
    ignore_file = root / ".dockerignore"
    patterns: list[IgnorePattern] = []
    if os.path.exists(ignore_file):  # a dangling symlink is no file, as for Docker
        data = _read_small(ignore_file, "ignore file", MAX_DOCKERIGNORE_BYTES, service)
        # Docker drops a byte order mark before the first pattern (or the pattern is lost), and
        # compares bytes: decoded like file names, undecodable bytes still match the same bytes.
        data = data.removeprefix(_UTF8_BOM)
        patterns = parse_dockerignore(os.fsdecode(data), source=str(ignore_file), service=service)
    # Docker sends these two even when .dockerignore names them (the build needs them).
    always = {".dockerignore"}
    dockerfile = _dockerfile_path(build).resolve()
    if dockerfile.is_relative_to(root.resolve()):
        always.add(dockerfile.relative_to(root.resolve()).as_posix())
    return _Context(root, patterns, frozenset(always), service)


def _walk(ctx: _Context) -> Iterator[tuple[str, os.stat_result]]:
    """Context entries that would be sent, as (relative slash path, lstat), in sorted order.

    Iterative (a context may nest deeper than Python's recursion limit). Sockets are skipped,
    as ``docker build`` skips them: a tar archive cannot hold one. Each pattern's result for a
    directory is handed down to its entries, so no path is matched more than once per pattern.
    """
    patterns = ctx.patterns
    # With no "!" pattern nothing below an excluded directory can come back, so skip its walk.
    can_reinclude = any(p.exclusion for p in patterns)
    none = tuple(False for _ in patterns)
    stack = [(iter(_list(ctx, ctx.root)), "", none)]
    while stack:
        entries, prefix, parent = stack[-1]
        entry = next(entries, None)
        if entry is None:
            stack.pop()
            continue
        rel = prefix + entry.name
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as exc:
            raise _unreadable(ctx, entry.path, exc) from exc
        if stat.S_ISSOCK(st.st_mode):
            continue
        matched = parent
        ignored = False
        if patterns:
            parts = rel.split("/")
            matched = tuple(m or p.matches_exactly(parts) for m, p in zip(parent, patterns, strict=True))
            for m, p in zip(reversed(matched), reversed(patterns), strict=True):
                if m:
                    ignored = not p.exclusion and rel not in ctx.always
                    break
        if not ignored:
            yield rel, st
        if stat.S_ISDIR(st.st_mode) and (not ignored or can_reinclude):
            stack.append((iter(_list(ctx, Path(entry.path))), rel + "/", matched))


def _list(ctx: _Context, directory: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(directory) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        raise _unreadable(ctx, str(directory), exc) from exc


def _unreadable(ctx: _Context, path: str, exc: OSError) -> BuildContextError:
    return BuildContextError(f"Could not read {path} in the build context{_whose(ctx.service)}: "
                             f"{exc.strerror or exc}.", service=ctx.service, path=path)


def context_files(build: BuildSpec, *, service: str | None = None) -> list[str]:
    """Relative slash paths of every entry the build sends (directories and symlinks too).

    Sorted; the tar holds each *non-recursively*. Parents of a re-included file inside an
    excluded directory are not listed (tar extraction creates them). The Dockerfile is listed
    when it lives in the context, ignored or not; one outside the context is not.
    """
    return [rel for rel, _ in _walk(_open_context(build, service))]


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


def _read_exactly(ctx: _Context, rel: str, size: int) -> Iterator[bytes]:
    """The ``size`` bytes of a regular file the walk saw, in chunks; more bytes (a growing log)
    are left out, fewer (the file shrank or was replaced) are a ``BuildContextError``."""
    path = ctx.root / rel
    try:
        # No following a symlink or waiting on a FIFO that replaced the file since the walk.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise _unreadable(ctx, str(path), exc) from exc
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _changed(ctx, path)
        left = size
        while left:
            try:
                chunk = f.read(min(_CHUNK, left))
            except OSError as exc:
                raise _unreadable(ctx, str(path), exc) from exc
            if not chunk:
                raise _changed(ctx, path)
            left -= len(chunk)
            yield chunk


def _changed(ctx: _Context, path: Path) -> BuildContextError:
    return BuildContextError(f"{path} in the build context{_whose(ctx.service)} changed while it was read; "
                             "try again once nothing writes to the context.", service=ctx.service, path=str(path))


def build_context_hash(
    build: BuildSpec, base_image_ids: Mapping[str, str] | None = None, *, service: str | None = None
) -> str:
    """Hash of all inputs of a build; equal hashes mean the build would produce the same image.

    ``base_image_ids`` maps ``FROM`` references to the ids the engine has for them; unknown
    references are left out (the next build pulls them and the hash then includes them).
    Files are read in chunks; a context that cannot be sent raises ``BuildContextError``.
    """
    h = hashlib.sha256()

    def field(tag: str, data: bytes) -> None:
        # Length-prefixed so no two different inputs concatenate to the same byte stream.
        h.update(f"{tag}:{len(data)}:".encode())
        h.update(data)

    ctx = _open_context(build, service)
    field("schema", b"1")
    dockerfile = read_dockerfile(build, service=service)
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

    for rel, st in _walk(ctx):
        mode = st.st_mode
        field("path", os.fsencode(rel))
        field("mode", f"{stat.S_IFMT(mode):o}:{stat.S_IMODE(mode):o}".encode())
        if stat.S_ISLNK(mode):
            field("link", os.fsencode(_readlink(ctx, rel)))
        elif stat.S_ISREG(mode):
            h.update(f"file:{st.st_size}:".encode())
            for chunk in _read_exactly(ctx, rel, st.st_size):
                h.update(chunk)
    return h.hexdigest()[:HASH_LENGTH]


def _readlink(ctx: _Context, rel: str) -> str:
    try:
        return os.readlink(ctx.root / rel)
    except OSError as exc:
        raise _unreadable(ctx, str(ctx.root / rel), exc) from exc


# -- the tar stream the engine receives -----------------------------------------------------------

_NUL = b"\0"
_TAR_TYPES = {stat.S_IFREG: tarfile.REGTYPE, stat.S_IFDIR: tarfile.DIRTYPE, stat.S_IFLNK: tarfile.SYMTYPE,
              stat.S_IFIFO: tarfile.FIFOTYPE, stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE}


class ContextStream:
    """The tar chunks of a build context, remembering the ``BuildContextError`` that ended them
    early: the HTTP client sending them reports that only as a broken connection."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self.error: BuildContextError | None = None

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._chunks
        except BuildContextError as exc:
            self.error = exc
            raise


def context_tar(build: BuildSpec, *, service: str | None = None) -> ContextStream:
    """The build context as a tar stream, in chunks of a few hundred KiB, for
    ``APIClient.build(fileobj=..., custom_context=True)``: memory use does not grow with the
    context, which may be larger than the device's memory.

    Everything that can be checked before anything is sent is checked by this call (the
    ``.dockerignore``, the Dockerfile, every directory of the context), raising
    ``BuildContextError`` with the service's name; the returned stream then only reads files,
    and raises the same error (also kept as its ``error``) should one vanish or shrink
    meanwhile. Entries carry their real mode, owner and mtime, as ``docker build`` sends them
    (the builder's cache ignores mtime); FIFOs and devices are sent as entries without
    content, sockets not at all, hard links as links.
    """
    ctx = _open_context(build, service)
    dockerfile = read_dockerfile(build, service=service)
    name = os.path.normpath(build.dockerfile).replace(os.sep, "/").lstrip("/")
    listed = False
    for rel, _ in _walk(ctx):  # all reading errors now, before the engine gets the first byte
        listed = listed or rel == name
    extra: tuple[str, bytes, os.stat_result | None] | None = None
    if build.dockerfile_inline is not None:
        extra = (name, dockerfile, None)   # not a file of the context: sent under its own name
    elif not listed:
        # The engine needs the Dockerfile even when it sits below an excluded directory.
        extra = (name, dockerfile, os.stat(_dockerfile_path(build)))
    return ContextStream(_tar_stream(ctx, extra))


def _tar_stream(ctx: _Context, extra: tuple[str, bytes, os.stat_result | None] | None) -> Iterator[bytes]:
    out = bytearray()
    first_of: dict[tuple[int, int], str] = {}  # (device, inode) -> the name a hard link points to
    for rel, st in _walk(ctx):
        info = _tar_info(rel, st)
        if info.issym():
            info.linkname = _readlink(ctx, rel)
        elif info.isfile() and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in first_of:
                info.type, info.linkname, info.size = tarfile.LNKTYPE, first_of[key], 0
            else:
                first_of[key] = rel
        out += _header(info)
        if info.isfile():
            for chunk in _read_exactly(ctx, rel, st.st_size):
                out += chunk
                if len(out) >= _CHUNK:
                    yield bytes(out)
                    out.clear()
            out += _padding(st.st_size)
        if len(out) >= _CHUNK:
            yield bytes(out)
            out.clear()
    if extra is not None:
        name, data, extra_st = extra
        info = _tar_info(name, extra_st) if extra_st is not None else tarfile.TarInfo(name)
        info.type, info.size = tarfile.REGTYPE, len(data)
        if extra_st is None:
            info.mode = 0o644
        out += _header(info) + data + _padding(len(data))
    out += _NUL * (2 * tarfile.BLOCKSIZE)  # end of archive, then whole records as tar writes them
    out += _NUL * (-len(out) % tarfile.RECORDSIZE)
    yield bytes(out)


def _tar_info(name: str, st: os.stat_result) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = _TAR_TYPES[stat.S_IFMT(st.st_mode)]
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    if info.isfile():
        info.size = st.st_size
    if info.ischr() or info.isblk():
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _header(info: tarfile.TarInfo) -> bytes:
    # PAX: names longer than 100 characters, and names that are not UTF-8 kept byte for byte.
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")


def _padding(size: int) -> bytes:
    return _NUL * (-size % tarfile.BLOCKSIZE)
