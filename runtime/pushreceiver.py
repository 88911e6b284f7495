"""The board's end of ``armstack push``: receives a release into the stack directory atomically.

``armstack push`` runs this file on the target with ``python3 -c`` (over ``ssh``, or locally for
``--to DIR``); it needs nothing but the Python 3.7+ standard library there, so it imports nothing
from the runtime and keeps to syntax old boards' Pythons read. The sender imports it for the
framing and the path rules, so both ends share one definition.

Layout next to the stack directory ``P`` (``P`` is a relative symlink, so a card mounted
elsewhere still resolves)::

    P -> P.armstack/releases/<id>          the current release (what the supervisor reads)
    P.armstack/releases/<id>/              a release's files
    P.armstack/releases/<id>.json          its manifest: path -> [kind, mode, sha256 or link target, size]
    P.armstack/incoming-<random>/          a release being received (never read by anyone)
    P.armstack/lock                        held while a push runs (one push at a time)

Protocol on stdin/stdout, each frame a 4-byte big-endian length and zlib-compressed JSON:

1. receiver -> ``{"release": current id or null, "manifest": {...}}``
2. sender -> ``{"release": new id, "set": {path: entry}, "delete": [path]}`` followed by one zlib
   stream holding the contents of the regular files of ``set``, in sorted path order
3. receiver -> ``{"ok": true, "release": id, "written": n}`` or ``{"ok": false, "error": sentence}``

A file of the new release that did not change is hard-linked from the current release (copied
where the filesystem has no hard links), so only changed files cross the wire. The release is
complete on disk (every file checked against its sha256, then synced) before the symlink is
swapped with one ``rename``: an interrupted push leaves the previous release in place and an
``incoming-*`` directory the next push removes. After a successful swap, ``--apply CMD`` is run
with ``sh -c`` in the stack directory (``$ARMSTACK_STACK_DIR`` names it), its output going back to the sender.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import struct
import sys
import zlib
from typing import IO, Any

MAX_FRAME = 64 << 20
KEEP = 2                   # earlier releases kept next to the current one
_ID = re.compile(r"^[0-9a-f]{16,64}$")
_CHUNK = 1 << 18


class PushError(Exception):
    """A push that cannot be received as sent (the sentence goes back to the sender)."""


def write_frame(out: Any, doc: Any) -> int:
    """Write one frame to ``out`` (anything with ``write`` and ``flush`` of bytes); returns its size."""
    data = zlib.compress(json.dumps(doc, separators=(",", ":"), sort_keys=True).encode())
    out.write(struct.pack(">I", len(data)) + data)
    out.flush()
    return 4 + len(data)


def read_frame(inp: Any) -> Any:
    """Read one frame from ``inp`` (anything with ``read(n)`` of bytes)."""
    head = _read_exactly(inp, 4)
    (size,) = struct.unpack(">I", head)
    if size > MAX_FRAME:
        raise PushError(f"a push frame is larger than {MAX_FRAME} bytes")
    return json.loads(zlib.decompress(_read_exactly(inp, size)).decode())


def _read_exactly(inp: Any, size: int) -> bytes:
    buf = b""
    while len(buf) < size:
        chunk = inp.read(size - len(buf))
        if not chunk:
            raise PushError("the push stream ended early (the sender stopped)")
        buf += chunk
    return buf


def check_path(path: str) -> str:
    """``path`` if it is a clean relative slash path inside the stack, else PushError."""
    parts = path.split("/")
    if (not path or "\0" in path or path.startswith("/") or
            any(p in ("", ".", "..") for p in parts)):
        raise PushError(f"refusing the path {path!r}: not a plain relative path inside the stack")
    return path


def check_manifest(manifest: dict[str, list[Any]]) -> None:
    """Every path is clean, every entry well formed, and no path lies below a file or a symlink
    (writing there would go through a symlink, out of the release)."""
    leaves = set()
    for path, entry in manifest.items():
        check_path(path)
        if (not isinstance(entry, list) or len(entry) != 4 or entry[0] not in ("f", "l", "d")
                or not isinstance(entry[1], int) or not isinstance(entry[2], str) or not isinstance(entry[3], int)):
            raise PushError(f"the manifest entry of {path!r} is malformed")
        if entry[0] != "d":
            leaves.add(path)
    for path in manifest:
        parts = path.split("/")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in leaves:
                raise PushError(f"refusing {path!r}: it lies below a file or symlink of the release")


def apply_changes(manifest: dict[str, list[Any]], changes: dict[str, list[Any]],
                  deleted: list[str]) -> dict[str, list[Any]]:
    """The manifest after a push: ``deleted`` paths gone, ``changes`` set."""
    out = {p: e for p, e in manifest.items() if p not in set(deleted)}
    out.update(changes)
    check_manifest(out)
    return out


class Zstream:
    """Reads the decompressed content stream in exact sizes."""

    def __init__(self, inp: IO[bytes]) -> None:
        self.inp, self.z, self.buf = inp, zlib.decompressobj(), b""

    def read(self, size: int) -> bytes:
        while len(self.buf) < size and not self.z.eof:
            chunk = self.inp.read(_CHUNK)
            if not chunk:
                raise PushError("the file contents ended early (the sender stopped)")
            self.buf += self.z.decompress(chunk)
        if len(self.buf) < size:
            raise PushError("the file contents are shorter than the manifest says")
        data, self.buf = self.buf[:size], self.buf[size:]
        return data

    def finish(self) -> None:
        """Read to the stream's end (a push that only deletes still sends an empty one)."""
        while not self.z.eof:
            chunk = self.inp.read(_CHUNK)
            if not chunk:
                raise PushError("the file contents ended early (the sender stopped)")
            self.buf += self.z.decompress(chunk)
        if self.buf:
            raise PushError("the file contents are longer than the manifest says")


class Target:
    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)
        self.name = os.path.basename(self.path)
        self.home = self.path + ".armstack"
        self.releases = os.path.join(self.home, "releases")

    def current(self) -> str | None:
        """The current release's id, if the stack directory is one of ours."""
        try:
            link = os.readlink(self.path)
        except OSError:
            return None
        head, rid = os.path.split(link)
        if head != os.path.join(self.name + ".armstack", "releases") or not _ID.match(rid):
            return None
        return rid

    def manifest(self, rid: str | None) -> dict[str, list[Any]]:
        if rid is None:
            return {}
        try:
            with open(os.path.join(self.releases, rid + ".json"), "rb") as f:
                doc = json.loads(f.read().decode())
        except (OSError, ValueError):
            return {}   # unreadable: everything is sent again, nothing is trusted
        return doc if isinstance(doc, dict) else {}

    def receive(self, inp: IO[bytes], out: IO[bytes]) -> dict[str, Any]:
        parent = os.path.dirname(self.path)
        if not os.path.isdir(parent):
            os.makedirs(parent, 0o755)
        for d in (self.home, self.releases):
            if not os.path.isdir(d):
                os.mkdir(d, 0o700)
        lock = os.open(os.path.join(self.home, "lock"), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            raise PushError(f"another push to {self.path} is running; try again when it has finished") from exc
        for name in os.listdir(self.home):   # what an interrupted push left
            if name.startswith("incoming-"):
                left = os.path.join(self.home, name)
                if os.path.isdir(left) and not os.path.islink(left):
                    shutil.rmtree(left, ignore_errors=True)
                else:
                    os.unlink(left)   # a staged manifest
        current = self.current()
        old = self.manifest(current)
        write_frame(out, {"release": current, "manifest": old})
        plan = read_frame(inp)
        rid, changes, deleted = plan.get("release"), plan.get("set") or {}, plan.get("delete") or []
        if not isinstance(rid, str) or not _ID.match(rid):
            raise PushError(f"the release id {rid!r} is not a hex digest")
        if rid == current:   # the same content (the id is its hash): nothing to write
            return {"ok": True, "release": rid, "written": 0}
        new = apply_changes(old, changes, deleted)
        staging = os.path.join(self.home, "incoming-" + secrets.token_hex(6))
        os.mkdir(staging, 0o755)
        try:
            written = self._fill(staging, new, changes, Zstream(inp), current)
            manifest_tmp = os.path.join(staging + ".json")
            with open(manifest_tmp, "w") as f:
                json.dump(new, f, separators=(",", ":"), sort_keys=True)
            os.sync()   # the release is on the card before anything points at it
            final = os.path.join(self.releases, rid)
            if os.path.lexists(final):
                shutil.rmtree(final)
            os.rename(manifest_tmp, final + ".json")
            os.rename(staging, final)
            self._swap(rid)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if os.path.exists(staging + ".json"):
                os.unlink(staging + ".json")
        self._prune(rid)
        return {"ok": True, "release": rid, "written": written}

    def _fill(self, staging: str, new: dict[str, list[Any]], changes: dict[str, list[Any]],
              content: Zstream, current: str | None) -> int:
        base = os.path.join(self.releases, current) if current else None
        written = 0
        for path in sorted(new):
            kind, mode, value, size = new[path]
            dest = os.path.join(staging, path)
            parent = os.path.dirname(dest)
            if not os.path.isdir(parent):
                os.makedirs(parent, 0o755)
            if kind == "d":
                if not os.path.isdir(dest):
                    os.mkdir(dest, 0o755)
                os.chmod(dest, mode & 0o7777)
            elif kind == "l":
                os.symlink(value, dest)
            elif path in changes:
                written += self._write(dest, path, mode, value, size, content)
            elif base is None:
                raise PushError(f"{path} is not on the target and was not sent; push again")
            else:
                self._carry(os.path.join(base, path), dest, path, size, current)
        content.finish()
        for path in sorted((p for p in new if new[p][0] == "d"), reverse=True):
            os.chmod(os.path.join(staging, path), new[path][1] & 0o7777)
        return written

    def _carry(self, source: str, dest: str, path: str, size: int, current: str | None) -> None:
        """Put the current release's unchanged file into the new one (a hard link, else a copy)."""
        try:
            try:
                os.link(source, dest, follow_symlinks=False)
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copy2(source, dest, follow_symlinks=False)
            st = os.lstat(dest)
            if not stat.S_ISREG(st.st_mode) or st.st_size != size:
                raise OSError(f"it is not the file that was pushed (size {st.st_size}, pushed {size})")
        except OSError as exc:
            # Changed on the target since it was pushed: its manifest can no longer be trusted, so
            # the next push sends every file.
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(self.releases, f"{current}.json"))
            raise PushError(f"{path} of the current release was changed or removed on the target ({exc}); "
                            "push again to send every file") from exc

    def _write(self, dest: str, path: str, mode: int, digest: str, size: int, content: Zstream) -> int:
        h = hashlib.sha256()
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as f:
            left = size
            while left:
                chunk = content.read(min(left, _CHUNK))
                h.update(chunk)
                f.write(chunk)
                left -= len(chunk)
        if h.hexdigest() != digest:
            raise PushError(f"{path} changed while it was sent (its sha256 does not match); push again")
        os.chmod(dest, mode & 0o7777)
        return size

    def _swap(self, rid: str) -> None:
        """Point the stack directory at release ``rid`` with one rename (atomic)."""
        link = self.path + ".new-" + secrets.token_hex(4)
        os.symlink(os.path.join(self.name + ".armstack", "releases", rid), link)
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            # A directory made by hand: kept aside, once (it is not ours to delete).
            aside = self.path + ".before-armstack"
            if os.path.lexists(aside):
                os.unlink(link)
                raise PushError(f"{self.path} is a directory and {aside} exists too; move one of them away")
            os.rename(self.path, aside)
        os.rename(link, self.path)
        dirfd = os.open(os.path.dirname(self.path), os.O_RDONLY)
        try:
            os.fsync(dirfd)
        finally:
            os.close(dirfd)

    def _prune(self, rid: str) -> None:
        """Keep the current release and the ``KEEP`` most recent before it."""
        ids = [n[:-5] for n in os.listdir(self.releases) if n.endswith(".json") and _ID.match(n[:-5])]
        ids.sort(key=lambda i: os.stat(os.path.join(self.releases, i + ".json")).st_mtime, reverse=True)
        for old in [i for i in ids if i != rid][KEEP:]:
            shutil.rmtree(os.path.join(self.releases, old), ignore_errors=True)
            os.unlink(os.path.join(self.releases, old + ".json"))


def main(argv: list[str]) -> int:
    path, apply_cmd = argv[0], (argv[2] if len(argv) > 2 and argv[1] == "--apply" else None)
    inp, out = sys.stdin.buffer, sys.stdout.buffer
    target = Target(path)
    try:
        result = target.receive(inp, out)
    except Exception as exc:   # the boundary: every failure goes back to the sender as a sentence
        write_frame(out, {"ok": False, "error": f"{target.path}: {exc}"})
        return 1
    write_frame(out, result)
    if apply_cmd is None:
        return 0
    os.chdir(target.path)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)   # the apply reads nothing from the push stream
    # $ARMSTACK_STACK_DIR names the stack directory as given, not the release it points to.
    os.execvp("sh", ["sh", "-c", 'ARMSTACK_STACK_DIR="$0"; export ARMSTACK_STACK_DIR; eval "$1"',
                     target.path, apply_cmd])
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
