"""``armstack push``: ship a release to a board's stack directory and hand it to its supervisor.

The release is the stack directory (the first compose file's directory): every file in it
except what ``.armstackignore`` (``.dockerignore`` syntax, at the stack's root) names, and,
inside a service's build context, only what that context's ``.dockerignore`` lets into the
build. The compose files and ``.env`` always go. Every build context must lie inside the stack
directory.

:mod:`runtime.pushreceiver` runs on the target (``python3 -c`` over ``ssh``, or locally for
``--to DIR``) and answers with the manifest of what it has; :mod:`runtime.pushplan` decides
what differs and only that is sent, compressed. The receiver builds the new release next to
the current one and swaps it in with one rename, then runs the apply command there (by
default ``armstack -f <stack>/<file> apply``), whose output is streamed back.
"""

from __future__ import annotations

import ast
import base64
import contextlib
import dataclasses
import hashlib
import io
import os
import shlex
import stat
import subprocess
import sys
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TextIO, cast

from runtime import pushreceiver
from runtime.buildctx import IgnorePattern, context_files, parse_dockerignore
from runtime.compose.model import BuildSpec
from runtime.compose.source import StackSource
from runtime.errors import BuildContextError, TransferError
from runtime.pushplan import (
    Changes,
    Entry,
    PushTarget,
    Selection,
    apply_command,
    diff,
    parse_target,
    release_id,
)

IGNORE_FILE = ".armstackignore"
_CHUNK = 1 << 18


@dataclass(frozen=True)
class LocalFile:
    entry: Entry
    source: Path


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def release_files(stack_dir: Path, builds: Sequence[tuple[str, BuildSpec]],
                  always: Sequence[str]) -> dict[str, LocalFile]:
    """The release's entries: path -> (manifest entry, local file), by the rules in the module doc.

    ``builds``: (service, build spec) of every built service; ``always``: paths shipped whatever
    an ignore file says (the compose files, ``.env``).
    """
    root = stack_dir.resolve()
    contexts: list[tuple[str, frozenset[str]]] = []
    for service, build in builds:
        ctx = Path(build.context).resolve()
        if not ctx.is_relative_to(root):
            raise TransferError(f"the build context {ctx} of service {service!r} is outside the stack directory "
                                f"{root}; push ships that directory only: move the context into it")
        prefix = ctx.relative_to(root).as_posix()
        contexts.append(("" if prefix == "." else prefix, frozenset(context_files(build, service=service))))
    ignore: list[IgnorePattern] = []
    if (root / IGNORE_FILE).is_file():
        ignore = parse_dockerignore((root / IGNORE_FILE).read_text(), source=str(root / IGNORE_FILE))
    wanted = Selection(frozenset(always), tuple(ignore), tuple(contexts)).wanted

    out: dict[str, LocalFile] = {}
    dirs: dict[str, LocalFile] = {}
    pending = [root]
    while pending:
        directory = pending.pop()
        try:
            with os.scandir(directory) as it:
                found = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise TransferError(f"cannot read {directory}: {exc.strerror or exc}") from exc
        for e in found:
            path = Path(e.path)
            rel = path.relative_to(root).as_posix()
            st = e.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                # An excluded directory may still hold a re-included file (a '!' pattern): walk it.
                if wanted(rel):
                    dirs[rel] = LocalFile(("d", stat.S_IMODE(st.st_mode), "", 0), path)
                pending.append(path)
            elif not wanted(rel):
                continue
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = LocalFile(("l", 0o777, os.readlink(path), 0), path)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = LocalFile(("f", stat.S_IMODE(st.st_mode), _sha256(path), st.st_size), path)
            # sockets, FIFOs and devices are not files a release can hold (docker build skips sockets too)
    # Directories travel implicitly with their files; only empty ones need an entry of their own.
    parents = {"/".join(p.split("/")[:i]) for p in out for i in range(1, p.count("/") + 1)}
    out.update({rel: d for rel, d in dirs.items() if rel not in parents})
    return out


def receiver_code() -> str:
    """The receiver's source, docstrings and comments dropped, as a ``python3 -c`` program."""
    tree = ast.parse(Path(pushreceiver.__file__).read_text())
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (isinstance(body, list) and body and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str)):
            node.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    packed = base64.b64encode(zlib.compress(ast.unparse(tree).encode(), 9)).decode()
    return f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{packed}')))"


def receiver_argv(target: PushTarget, apply: str | None, ssh: Sequence[str] = ("ssh",)) -> list[str]:
    """The command that runs the receiver for ``target`` (and then ``apply``, a shell command)."""
    args = [receiver_code(), target.path, *(["--apply", apply] if apply is not None else [])]
    if target.kind == "dir":
        return [sys.executable, "-c", *args]
    port = ["-p", str(target.port)] if target.port else []
    # ssh hands the remote shell one string: every argument is quoted for it.
    return [*ssh, "-o", "BatchMode=yes", *port, "--", target.destination, shlex.join(["python3", "-c", *args])]


class _Counted:
    """A write end that counts the bytes it passes on."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.count += len(data)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()


class _CountedReader:
    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.count = raw, 0

    def read(self, size: int) -> bytes:
        data = self.raw.read(size)
        self.count += len(data)
        return data


@dataclass(frozen=True)
class PushResult:
    target: str
    release: str
    previous: str | None
    changes: Changes
    sent_bytes: int        # to the target: the command line, the change list and the compressed contents
    received_bytes: int    # from the target: its manifest and its answer
    apply_exit: int | None  # the apply command's exit code; None with --no-apply


def push(target: PushTarget, files: dict[str, LocalFile], *, apply: str | None, out: TextIO,
         ssh: Sequence[str] = ("ssh",), env: dict[str, str] | None = None,
         on_shipped: Callable[[PushResult], None] | None = None) -> PushResult:
    """Ship ``files`` to ``target`` and run ``apply`` there (None: ship only); stream its output to ``out``.

    ``on_shipped`` hears the result once the release is in place, before the apply runs.
    """
    manifest = {p: f.entry for p, f in files.items()}
    rid = release_id(manifest)
    argv = receiver_argv(target, apply, ssh)
    command_bytes = len(argv[-1].encode()) if target.kind == "ssh" else sum(len(a.encode()) for a in argv[2:])
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    except OSError as exc:
        raise TransferError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    assert proc.stdin is not None and proc.stdout is not None
    sent, got = _Counted(proc.stdin), _CountedReader(proc.stdout)
    try:
        hello = _frame(got, proc, target)
        previous = hello.get("release") if isinstance(hello.get("release"), str) else None
        old = hello.get("manifest")
        changes = diff(old if isinstance(old, dict) else {}, manifest)
        try:
            pushreceiver.write_frame(sent, {"release": rid, "set": {p: list(e) for p, e in changes.set.items()},
                                            "delete": changes.delete})
            if rid != previous:
                _send_contents(sent, changes, files)
            proc.stdin.close()
        except BrokenPipeError:
            pass   # the receiver stopped reading: its answer says why
        answer = _frame(got, proc, target)
        if not answer.get("ok"):
            raise TransferError(f"the push to {target} failed, the target keeps its release: {answer.get('error')}")
        received = got.count
        shipped = PushResult(str(target), rid, previous, changes, command_bytes + sent.count, received, None)
        if on_shipped is not None:
            on_shipped(shipped)
        if apply is not None:
            while chunk := cast(io.BufferedReader, proc.stdout).read1(_CHUNK):   # the apply's report, as it comes
                out.write(chunk.decode(errors="replace"))
                out.flush()
        code = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()   # our own child: a failed push leaves nothing running
            proc.wait()
    return dataclasses.replace(shipped, apply_exit=code if apply is not None else None)


def _frame(got: _CountedReader, proc: subprocess.Popen[bytes], target: PushTarget) -> dict[str, Any]:
    try:
        doc = pushreceiver.read_frame(got)
    except (pushreceiver.PushError, ValueError, zlib.error) as exc:
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()   # a receiver still waiting for input ends
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()   # our own child, by its pid
            code = proc.wait()
        raise TransferError(f"{target} did not answer as armstack's receiver (exit {code}: {exc}); the target "
                            "needs python3 and write access to the stack directory's parent") from exc
    if not isinstance(doc, dict):
        raise TransferError(f"{target} answered something that is not a push frame")
    return doc


def _send_contents(sent: _Counted, changes: Changes, files: dict[str, LocalFile]) -> None:
    z = zlib.compressobj(6)
    for path in changes.send:
        left = changes.set[path][3]
        with open(files[path].source, "rb") as f:
            while left:
                chunk = f.read(min(left, _CHUNK))
                if not chunk:
                    raise TransferError(f"{files[path].source} shrank while it was sent; push again")
                sent.write(z.compress(chunk))
                left -= len(chunk)
    sent.write(z.flush())


def stack_release(stack: Any, compose_files: Sequence[str]) -> tuple[Path, dict[str, LocalFile], list[str]]:
    """(stack directory, its release files, the compose files relative to it) of a loaded stack."""
    root = Path(compose_files[0]).resolve().parent
    rel_files = []
    for f in compose_files:
        p = Path(f).resolve()
        if not p.is_relative_to(root):
            raise TransferError(f"the compose file {p} is outside the stack directory {root}; push ships that "
                                "directory only")
        rel_files.append(p.relative_to(root).as_posix())
    builds = [(s.name, s.build) for s in stack.services if s.build is not None]
    try:
        files = release_files(root, builds, [*rel_files, ".env"])
    except BuildContextError as exc:
        raise TransferError(str(exc)) from exc
    return root, files, rel_files


def summary(result: PushResult) -> str:
    c = result.changes
    what = "unchanged" if result.release == result.previous else (
        f"{len(c.set)} changed ({c.content_bytes} bytes of file contents), {len(c.delete)} removed, "
        f"{c.unchanged} unchanged")
    return (f"pushed release {result.release[:12]} to {result.target}: {what}; sent {result.sent_bytes} bytes, "
            f"received {result.received_bytes}")


def run(args: Any, stack: Any, source: StackSource, environ: Mapping[str, str],
        log: TextIO = sys.stderr) -> int:
    """``armstack push``: returns the apply's exit code (0 with ``--no-apply`` once shipped).

    ``source``: the stack's files, project and profiles as given here (the target's apply names
    them, its files in the pushed directory). ``environ``: this process's environment (the
    settings'), passed on to a local apply.
    """
    from runtime.compose.loader import find_compose_file

    target = parse_target(args.target, args.to)
    compose_files = [find_compose_file(p) for p in source.paths]
    _, files, rel_files = stack_release(stack, compose_files)
    env = None
    apply: str | None = None
    if not args.no_apply:
        armstack = "armstack"
        if target.kind == "dir":
            # This machine: the same interpreter and runtime package that runs this command.
            armstack = shlex.join([sys.executable, "-m", "runtime"])
            package_root = str(Path(__file__).resolve().parent.parent)
            env = {**environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, environ.get("PYTHONPATH")]))}
        on_target = dataclasses.replace(source, paths=tuple(rel_files), env=None)
        apply = args.apply_command or apply_command(on_target, armstack, args.data_dir)
    print(f"pushing {len(files)} entries of {Path(compose_files[0]).resolve().parent} to {target}", file=log)
    result = push(target, files, apply=apply, out=sys.stdout, ssh=shlex.split(args.ssh), env=env,
                  on_shipped=lambda r: print(summary(r), file=log, flush=True))
    return result.apply_exit or 0
