"""How processes agree on who runs a project, and how ``apply`` hands a file to a supervisor.

One supervisor per project holds an exclusive ``flock`` on the project's lock file for its
whole life (the kernel drops it when the process dies, even by SIGKILL or a power cut, so a
stale lock never blocks a reboot). ``armstack apply`` tries the same lock: if it gets it, no
supervisor runs and it converges by itself; if not, it writes ``request-<id>.json``
(atomically, a random id per request), sends SIGHUP to the supervisor and waits until the
status shows the result of *that* request: ``last_apply.request_id`` equal to its id, or its
id among ``dropped_requests`` (superseded by a newer request, or left over from before a
restart), or the supervisor gone or restarted. Another request's result is never taken for
its own, whatever its generation.

Nothing in the state directory is taken on trust: the pid file only names the process to
signal if it holds the lock (``/proc/locks`` says who does), pids ≤ 1 are refused, every file
is opened without following symlinks, and a request is taken off the directory before it is
parsed, so a bad one is dropped once instead of failing every boot.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.compose.source import StackSource
from runtime.errors import StateError, SupervisorError
from runtime.state import open_nofollow

REQUEST_NAME = re.compile(r"^request(-[A-Za-z0-9_-]{1,64})?\.json$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_REQUEST_BYTES = 64 * 1024
MAX_GENERATION = 2**53   # JSON numbers above this are not exact integers everywhere


class ProjectLock:
    """An exclusive, non-blocking flock on a project's lock file (its directory must exist)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True if taken; False if another process holds it. StateError if the file is not ours to lock."""
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> ProjectLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True while some process (a supervisor) holds the project's lock."""
    if not Path(path).exists():
        return False
    lock = ProjectLock(path)
    if lock.acquire():
        lock.release()
        return False
    return True


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or None if missing, unreadable, or not a pid (≤ 0 never is one:
    ``kill(-1)`` signals every process, ``kill(0)`` our own group). Pid 1 may be a supervisor
    that is a container's main process; :func:`running_supervisor` signals it only when the
    kernel says it holds the lock (elsewhere pid 1 is init)."""
    try:
        fd = open_nofollow(Path(path), os.O_RDONLY)
    except (OSError, StateError):
        return None
    try:
        text = os.read(fd, 64).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if 0 < pid < 2**22 + 1 else None   # 2**22: the kernel's pid_max limit


def lock_holders(path: Path, proc_locks: Path = Path("/proc/locks")) -> set[int] | None:
    """Pids holding an flock on ``path`` according to the kernel, or None if it cannot say.

    0 in the set: the holder runs in another pid namespace (another container).
    """
    try:
        ino = os.stat(path).st_ino
        lines = proc_locks.read_text().splitlines()
    except OSError:
        return None
    holders = set()
    for line in lines:
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 fe:00:56789 0 EOF"; blocked waiters are "1: -> FLOCK ..."
        if len(parts) >= 6 and parts[1] == "FLOCK" and parts[5].rsplit(":", 1)[-1] == str(ino):
            try:
                holders.add(int(parts[4]))
            except ValueError:
                continue
    return holders


def running_supervisor(lock_path: Path, pid_path: Path, proc_locks: Path = Path("/proc/locks")) -> int | None:
    """The pid of the supervisor running the project, checked, or None if none runs.

    The lock decides: a free lock means no supervisor, whatever the pid file says (a stale pid
    after a power cut may belong to another process by now). A held lock with a pid file that
    does not name its holder raises SupervisorError instead of signalling a stranger.
    """
    if not is_locked(lock_path):
        return None
    pid = read_pid(pid_path)
    if pid is None:
        raise SupervisorError(
            f"A supervisor holds {lock_path} but its pid file {pid_path} is missing or does not hold a "
            "valid pid; retry in a moment, or stop that supervisor and run the command again.")
    holders = lock_holders(lock_path, proc_locks)
    if pid == 1 and not (holders and 1 in holders):
        raise SupervisorError(
            f"The pid file {pid_path} names pid 1, which the kernel does not show holding {lock_path}; "
            "not signalling init. Stop the supervisor and remove the pid file.")
    if holders and pid not in holders:
        if holders == {0}:
            raise SupervisorError(
                f"The supervisor holding {lock_path} runs in another container (pid namespace); run the "
                "command there.")
        raise SupervisorError(
            f"The pid file {pid_path} names pid {pid}, but the lock {lock_path} is held by pid "
            f"{', '.join(str(h) for h in sorted(holders))}; not signalling a process that is not the "
            "supervisor. Retry in a moment; if it persists, stop the supervisor and remove the pid file.")
    return pid


# -- apply requests ---------------------------------------------------------------------------


def new_request_id() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class ApplyRequest:
    """What ``armstack apply`` asks a running supervisor to load (``request-<id>.json``).

    ``source`` names the files (absolute, in merge order), project and profiles as the CLI read
    them; its schema and limits are :class:`StackSource`'s own. ``reset`` (``apply --reset``):
    the supervisor first forgets its per-service history, as if the stack had just been deployed
    (see ``Supervisor._forget_history``).
    """

    source: StackSource
    generation: int
    id: str = field(default_factory=new_request_id)
    reset: bool = False

    @property
    def file(self) -> str:
        """The main compose file, for messages."""
        return self.source.paths[0]

    @property
    def project(self) -> str | None:
        return self.source.project

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source.to_json(), "generation": self.generation, "id": self.id, "reset": self.reset}

    @classmethod
    def from_json(cls, doc: Any) -> ApplyRequest:
        """The request in ``doc``; ValueError (a sentence) for anything but the exact schema."""
        if not isinstance(doc, dict):
            raise ValueError("it is not a JSON object")
        generation, rid = doc.get("generation"), doc.get("id")
        if type(generation) is not int or not 0 <= generation <= MAX_GENERATION:
            raise ValueError(f"'generation' must be an integer from 0 to {MAX_GENERATION}, not {generation!r}")
        if not isinstance(rid, str) or not _REQUEST_ID.match(rid):
            raise ValueError("'id' must be 1 to 64 letters, digits, '_' or '-'")
        reset = doc.get("reset", False)   # absent in requests of a CLI from before it existed
        if type(reset) is not bool:
            raise ValueError(f"'reset' must be true or false, not {reset!r}")
        source = doc["source"] if "source" in doc else _older_source(doc)
        return cls(StackSource.from_json(source), generation, rid, reset)


def _older_source(doc: dict[str, Any]) -> Any:
    """The source of a request written by an armstack from before requests carried one (a CLI
    older than the running supervisor, during an upgrade): that frozen shape, read as the new one."""
    file = doc.get("file")
    if not isinstance(file, str):
        raise ValueError("'source' must be a JSON object")
    rest = doc.get("overrides", [])
    return {"paths": [file, *rest] if isinstance(rest, list) else rest,
            "project": doc.get("project"), "profiles": doc.get("profiles", [])}


def request_path(directory: Path, request_id: str) -> Path:
    return Path(directory) / f"request-{request_id}.json"


def take_requests(directory: Path) -> tuple[list[ApplyRequest], list[str]]:
    """Take every pending request off ``directory``, oldest first, plus a sentence per bad one.

    Each file is removed before it is parsed: a request that cannot be used is dropped once
    and reported, never left behind to fail the next reload or boot too.
    """
    try:
        names = sorted(n for n in os.listdir(directory) if REQUEST_NAME.match(n))
    except FileNotFoundError:
        return [], []
    taken: list[tuple[int, str, ApplyRequest]] = []
    problems: list[str] = []
    for name in names:
        path = Path(directory) / name
        try:
            fd = open_nofollow(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        except (OSError, StateError) as exc:
            _remove(path)
            problems.append(f"dropped {path}: {exc}")
            continue
        try:
            _remove(path)
            mtime = os.fstat(fd).st_mtime_ns
            raw = os.read(fd, MAX_REQUEST_BYTES + 1)
        except OSError as exc:
            problems.append(f"dropped {path}: cannot read it ({exc.strerror or exc})")
            continue
        finally:
            os.close(fd)
        try:
            if len(raw) > MAX_REQUEST_BYTES:
                raise ValueError(f"it is larger than {MAX_REQUEST_BYTES} bytes")
            doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
            taken.append((mtime, name, ApplyRequest.from_json(doc)))
        except (ValueError, RecursionError) as exc:   # UnicodeDecodeError and JSONDecodeError are ValueErrors
            problems.append(f"dropped the invalid apply request {path}: {exc}")
    taken.sort(key=lambda t: (t[0], t[1]))
    return [req for _, _, req in taken], problems


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _finite_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value)


def next_generation(status: dict[str, Any] | None) -> int:
    """The generation a new request asks for: one past the status's (0 for a missing or bad one)."""
    generation = (status or {}).get("generation")
    return (generation if type(generation) is int and generation >= 0 else 0) + 1


def hand_off(
    request: ApplyRequest,
    *,
    state_dir: Path,
    pid: int,
    read_status: Callable[[], dict[str, Any] | None],
    write_json: Callable[[Path, Any], None],
    supervisor_running: Callable[[], bool],
    timeout: float,
    poll: float = 0.2,
    kill: Callable[[int, int], None] = os.kill,
) -> dict[str, Any]:
    """Give ``request`` to the supervisor ``pid`` and wait for the result of that request.

    Returns the status whose ``last_apply`` is this request's. SupervisorError if the
    supervisor dropped it (superseded, or restarted before taking it), stopped, or did not
    finish within ``timeout``. Polling the status file is the only channel a separate process
    has here; the interval is short and bounded by ``timeout``.
    """
    path = request_path(state_dir, request.id)
    write_json(path, request.to_json())
    handed_at = time.time()
    try:
        kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        _remove(path)
        raise SupervisorError(f"The supervisor (pid {pid}) is gone; run apply again.") from exc
    except PermissionError as exc:
        _remove(path)
        raise SupervisorError(f"Not allowed to signal the supervisor (pid {pid}); run apply as its user.") from exc
    deadline = time.monotonic() + timeout
    not_applied = f"{request.file} was not applied (request {request.id}); run apply again."
    while True:
        status = read_status() or {}
        last = status.get("last_apply")
        if isinstance(last, dict) and last.get("request_id") == request.id:
            return status
        answered = status.get("answered_requests")
        mine = answered.get(request.id) if isinstance(answered, dict) else None
        if isinstance(mine, dict):   # a later apply finished before this one read its answer
            return {**status, "last_apply": mine}
        dropped = status.get("dropped_requests")
        if isinstance(dropped, dict) and request.id in dropped:
            raise SupervisorError(f"The supervisor dropped this apply: {dropped[request.id]}. {not_applied}")
        sup = status.get("supervisor")
        now_pid = _finite_int(sup.get("pid")) if isinstance(sup, dict) else None
        written = status.get("updated_at")
        fresh = isinstance(written, int | float) and not isinstance(written, bool) and written >= handed_at
        if now_pid is not None and now_pid != pid and fresh:
            raise SupervisorError(f"The supervisor restarted (pid {pid}, now {now_pid}) before it applied this "
                                  f"request; it runs the file it was started with. {not_applied}")
        if not supervisor_running():
            _remove(path)
            raise SupervisorError(f"The supervisor (pid {pid}) stopped before it applied this request. "
                                  f"{not_applied}")
        if time.monotonic() >= deadline:
            raise SupervisorError(
                f"The supervisor (pid {pid}) did not finish applying {request.file} (generation "
                f"{request.generation}, request {request.id}) within {timeout:g} s; see `armstack status` "
                "and its log.")
        time.sleep(poll)
