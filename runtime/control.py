"""How processes agree on who runs a project, and how ``apply`` hands a file to a supervisor.

One supervisor per project holds an exclusive ``flock`` on the project's lock file for its
whole life (the kernel drops it when the process dies, even by SIGKILL or a power cut, so a
stale lock never blocks a reboot). ``armstack apply`` tries the same lock: if it gets it, no
supervisor runs and it converges by itself; if not, it writes ``request.json`` (atomically),
sends SIGHUP to the pid in the pid file and waits for ``status.last_apply.generation`` to
reach the generation it asked for.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import SupervisorError


class ProjectLock:
    """An exclusive, non-blocking flock on a project's lock file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self) -> bool:
        """True if taken; False if another process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
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
    lock = ProjectLock(path)
    if not Path(path).exists():
        return False
    if lock.acquire():
        lock.release()
        return False
    return True


def read_pid(path: Path) -> int | None:
    try:
        return int(Path(path).read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ApplyRequest:
    """What ``armstack apply`` asks a running supervisor to load (request.json)."""

    file: str
    project: str
    generation: int

    def to_json(self) -> dict[str, Any]:
        return {"file": self.file, "project": self.project, "generation": self.generation}

    @classmethod
    def from_json(cls, doc: Any) -> ApplyRequest:
        if not isinstance(doc, dict) or not isinstance(doc.get("file"), str):
            raise ValueError("request.json must be an object with a 'file' string")
        return cls(str(doc["file"]), str(doc.get("project") or ""), int(doc.get("generation") or 0))


def read_request(path: Path) -> ApplyRequest | None:
    """The pending request, or None; a torn/invalid file raises ValueError."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    return ApplyRequest.from_json(json.loads(text))


def hand_off(
    request: ApplyRequest,
    *,
    request_path: Path,
    pid_path: Path,
    read_status: Callable[[], dict[str, Any] | None],
    write_json: Callable[[Path, Any], None],
    timeout: float,
    poll: float = 0.2,
) -> dict[str, Any]:
    """Give ``request`` to the running supervisor and wait for its ``last_apply``; returns the status.

    Polling the status file is the only channel a separate process has here; the interval is
    short and bounded by ``timeout``.
    """
    pid = read_pid(pid_path)
    if pid is None:
        raise SupervisorError(
            f"A supervisor holds the lock but its pid file {pid_path} is missing or unreadable; "
            "retry in a moment, or stop it and run apply again."
        )
    write_json(request_path, request.to_json())
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError as exc:
        raise SupervisorError(f"The supervisor (pid {pid}) is gone; run apply again.") from exc
    except PermissionError as exc:
        raise SupervisorError(f"Not allowed to signal the supervisor (pid {pid}); run apply as its user.") from exc
    deadline = time.monotonic() + timeout
    while True:
        status = read_status() or {}
        last = status.get("last_apply") or {}
        if int(last.get("generation") or 0) >= request.generation:
            return status
        if time.monotonic() >= deadline:
            raise SupervisorError(
                f"The supervisor (pid {pid}) did not finish applying generation {request.generation} "
                f"within {timeout:g} s; see `armstack status` and its log."
            )
        time.sleep(poll)
