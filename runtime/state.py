"""Persisted supervisor state and the status file, written so a power cut never tears them.

Layout, one directory per stack (``<data_dir>/<project>/``)::

    state.json        PersistedState: release, generation, per-service restart records, and the
                      safe-update state (runtime.rollback: previous release, probation, rollbacks)
    status.json       the live status the CLI and the test harness read (schema below)
    request-<id>.json a request from ``armstack apply`` to a running supervisor (runtime.control)
    supervisor.lock   held by the running supervisor
    supervisor.pid    its process id

The project directory is created 0700 and must stay ours: a real directory (not a symlink),
owned by the effective user, writable by nobody else; otherwise every use raises StateError
instead of trusting a pid file, request or status someone else could have planted (one of
ours that others may only read, as older runtimes created them, is tightened to 0700).
Files in it are created 0600 and never opened through a symlink (:func:`open_nofollow`).

Every JSON file is written by :func:`atomic_write_json`: temp file in the same directory,
fsync, ``os.replace``, fsync of the directory; a new directory is fsynced into its parent.
After a power cut the file is either the old version or the new one, never a mix (SD cards
and ext4 with delayed allocation otherwise leave zero-length or half-written files).

Corrupt files (which atomic writes make unlikely, but a failing SD card does not). A file is
corrupt if it is not UTF-8 JSON, or not of the shape below (types checked, not just keys):

* :func:`read_json` raises :class:`StateError` naming the file and what to do;
* :meth:`StateStore.load` instead moves a corrupt ``state.json`` (or one of another format
  ``version``) aside to ``state.json.corrupt`` and starts from an empty state, with a warning
  naming the file. The state only holds counters and the last release, all of which the
  supervisor rebuilds; refusing to boot a device's stack over it would be the worse failure.
  :meth:`StateStore.check_disk_file` does the same for the disk guard's ``disk.json``.
* :meth:`StateStore.read_status` raises: the status is only read by people and tools, who
  should be told (``armstack status`` says the status is unreadable and exits 1).

Status schema (keys the CLI and the harness rely on)::

    {"project", "release", "generation", "updated_at",
     "supervisor": {"pid", "started_at", "ready"},
     "last_apply": {"generation", "ok", "error", "finished_at", "report", "totals", "removed",
                    "request_id"},
     "services": {name: {"state", "container_id", "image", "image_id", "restarts",
                         "last_exit", "last_exit_at", "oom_killed", "health",
                         "backoff_until", "crash_looping", "waiting_for", "probation", "rollbacks"}},
     "rollback": {"services", "failed", "reason", "at"} (the last rollback, or null),
     "disk": {"percent", "used", "free", "last_cleanup": {"at", "freed_bytes", "removed"}, "refused"},
     "dropped_requests": {request_id: why it was not applied},
     "answered_requests": {request_id: last_apply of that request (the latest few)}}
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import re
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from runtime.errors import StateError
from runtime.rollback import RollbackState

STATE_VERSION = 1
_log = logging.getLogger("armstack.state")
_SAFE_PROJECT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


# -- atomic files -----------------------------------------------------------------------------


def atomic_write_json(path: Path, data: object) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically and durably.

    Raises :class:`StateError` (with the cause chained) if the file cannot be written; the old
    file is then left as it was.
    """
    path = Path(path)
    payload = (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    tmp_name: str | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(payload)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
        tmp_name = None
        _fsync_dir(path.parent)   # makes the rename itself survive a power cut
    except OSError as exc:
        raise StateError(_write_failure(path, exc)) from exc
    finally:
        if tmp_name is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)


def open_nofollow(path: Path, flags: int, mode: int = 0o600) -> int:
    """``os.open`` of a regular file in a state directory, never through a symlink.

    Created files are 0600. StateError (a sentence naming the file) if ``path`` is a symlink or
    not a regular file (a FIFO would hang a reader); other OSErrors pass through.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StateError(f"{path} is a symbolic link; the runtime does not follow links in its state "
                             f"directory. Remove it.") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise StateError(f"{path} is not a regular file; remove it.")
    return fd


def read_json(path: Path, default: Any = None) -> Any:
    """The JSON in ``path``, or ``default`` if the file does not exist.

    Raises :class:`StateError` if it exists but cannot be read, is a symlink, or is not valid
    UTF-8 JSON (the cause is then a ValueError).
    """
    path = Path(path)
    try:
        fd = open_nofollow(path, os.O_RDONLY)
        with os.fdopen(fd, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise StateError(
            f"Cannot read {path}: {exc.strerror or exc}. Check the permissions of the state directory "
            f"(run the supervisor and the CLI as the same user)."
        ) from exc
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise StateError(
            f"{path} is corrupt ({exc}). Move it aside or delete it; the supervisor rewrites it."
        ) from exc


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return   # some filesystems cannot open directories; the rename is still atomic
    try:
        with contextlib.suppress(OSError):   # e.g. EINVAL on filesystems without dir fsync
            os.fsync(fd)
    finally:
        os.close(fd)


def _write_failure(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return f"Cannot write {path}: the disk is full. Free space on the device (e.g. `armstack prune`)."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (
            f"Cannot write {path}: {exc.strerror}. Run as a user that can write {path.parent}, "
            f"or choose another data directory with --data-dir."
        )
    return f"Cannot write {path}: {exc.strerror or exc}."


# -- persisted state --------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceRecord:
    """What survives a supervisor restart about one service."""

    restarts: int = 0
    last_exit_code: int | None = None
    last_exit_at: float | None = None   # epoch seconds
    oom_killed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: object) -> ServiceRecord:
        if not isinstance(data, Mapping):
            return cls()
        return cls(
            restarts=_as_int(data.get("restarts"), 0),
            last_exit_code=_as_opt_int(data.get("last_exit_code")),
            last_exit_at=_as_opt_float(data.get("last_exit_at")),
            oom_killed=bool(data.get("oom_killed", False)),
        )


@dataclass(frozen=True)
class PersistedState:
    """The supervisor's memory across restarts and power cuts.

    ``from_json`` ignores keys it does not know and defaults missing ones, so runtimes of the
    same format ``version`` read each other's files; :meth:`StateStore.load` checks the version
    and the types first.
    """

    release: str = ""
    generation: int = 0
    services: Mapping[str, ServiceRecord] = field(default_factory=dict)
    rollback: RollbackState = field(default_factory=RollbackState)

    def service(self, name: str) -> ServiceRecord:
        return self.services.get(name, ServiceRecord())

    def with_service(self, name: str, record: ServiceRecord) -> PersistedState:
        return replace(self, services={**self.services, name: record})

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "release": self.release,
            "generation": self.generation,
            "services": {name: rec.to_json() for name, rec in sorted(self.services.items())},
            "rollback": self.rollback.to_json(),
        }

    @classmethod
    def from_json(cls, data: object) -> PersistedState:
        if not isinstance(data, Mapping):
            return cls()
        services = data.get("services")
        return cls(
            release=str(data.get("release") or ""),
            generation=_as_int(data.get("generation"), 0),
            services={
                str(name): ServiceRecord.from_json(rec)
                for name, rec in (services.items() if isinstance(services, Mapping) else ())
            },
            rollback=RollbackState.from_json(data.get("rollback")),
        )


# -- status -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceStatus:
    """One service's entry in ``status.json``; the test harness reads it as ``ServiceState``."""

    state: str = "unknown"                # running, starting, completed, exited, backoff, waiting, ...
    restart: str = ""                     # the policy it runs under, e.g. "always (default)"
    container_id: str | None = None
    image: str | None = None
    image_id: str | None = None
    restarts: int | None = 0              # None: not counted (no supervisor runs the stack)
    last_exit: int | None = None          # exit code of the last exit
    last_exit_at: float | None = None
    oom_killed: bool = False
    health: str | None = None             # starting / healthy / unhealthy; None: no healthcheck
    backoff_until: float | None = None    # epoch seconds
    crash_looping: bool = False
    waiting_for: tuple[str, ...] = ()     # dependencies it waits on before it can start
    # Seconds from reading the engine's die event to issuing the restart, for the last crash:
    # how fast the supervisor itself reacts (the engine's own start time comes on top).
    event_to_action: float | None = None
    probation: bool = False               # replaced by the last apply, not yet proven good
    rollbacks: int = 0                    # times it was rolled back to the previous release

    @property
    def status(self) -> str:
        """The same as ``state`` (the harness's name for it before the types were shared)."""
        return self.state

    @property
    def up(self) -> bool:
        """Running, healthy or a completed job: what ``armstack status`` counts as up."""
        return self.state in ("running", "healthy", "completed")

    def to_json(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["waiting_for"] = list(self.waiting_for)
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ServiceStatus:
        """From an entry already checked against the schema (:meth:`StatusDocument.from_json` checks)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["waiting_for"] = tuple(values.get("waiting_for") or ())
        for flag in ("oom_killed", "crash_looping", "probation"):
            values[flag] = bool(values.get(flag, False))
        return cls(**values)


@dataclass(frozen=True)
class SupervisorInfo:
    pid: int
    started_at: float | None = None
    ready: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"pid": self.pid, "started_at": self.started_at, "ready": self.ready}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SupervisorInfo:
        return cls(pid=int(data.get("pid") or 0), started_at=data.get("started_at"),
                   ready=bool(data.get("ready", False)))


@dataclass(frozen=True)
class ApplyResult:
    """Outcome of the last apply of a generation (``report`` is free-form, e.g. build times)."""

    generation: int
    ok: bool
    error: str | None = None
    finished_at: float | None = None
    report: Mapping[str, Any] = field(default_factory=dict)
    totals: Mapping[str, Any] = field(default_factory=dict)   # sums over ``report`` (runtime.report.totals)
    removed: tuple[str, ...] = ()                             # services removed as no longer in the file
    request_id: str | None = None                             # the `armstack apply` request it answers

    def to_json(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "ok": self.ok,
            "error": self.error,
            "finished_at": self.finished_at,
            "report": dict(self.report),
            "totals": dict(self.totals),
            "removed": list(self.removed),
            "request_id": self.request_id,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApplyResult:
        return cls(generation=int(data.get("generation") or 0), ok=bool(data["ok"]), error=data.get("error"),
                   finished_at=data.get("finished_at"), report=dict(data.get("report") or {}),
                   totals=dict(data.get("totals") or {}), removed=tuple(data.get("removed") or ()),
                   request_id=data.get("request_id"))


@dataclass(frozen=True)
class StatusDocument:
    """``status.json``, typed: the supervisor writes it, the CLI and the test harness read it.

    :meth:`to_json` gives every key of the schema (the JSON names are the contract other tools
    read, so they never change); :meth:`from_json` checks the types first and raises
    :class:`StateError` naming the first wrong value. ``supervisor`` is None for a stack no
    supervisor runs (``armstack status`` then observes the engine). ``disk`` and
    ``answered_requests`` stay the mappings their writers make (checked, not typed further).
    """

    project: str
    services: Mapping[str, ServiceStatus] = field(default_factory=dict)
    release: str = ""
    generation: int = 0
    updated_at: float | None = None
    supervisor: SupervisorInfo | None = None
    last_apply: ApplyResult | None = None
    disk: Mapping[str, Any] = field(default_factory=dict)
    dropped_requests: Mapping[str, str] = field(default_factory=dict)
    answered_requests: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    rollback: Mapping[str, Any] | None = None   # the last rollback (runtime.rollback.RollbackRecord)

    @property
    def ok(self) -> bool:
        """Whether every service is up (running, healthy or a completed job)."""
        return all(s.up for s in self.services.values())

    def with_services(self, services: Mapping[str, ServiceStatus]) -> StatusDocument:
        return replace(self, services=services)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "release": self.release,
            "generation": self.generation,
            "updated_at": time.time() if self.updated_at is None else self.updated_at,
            "supervisor": None if self.supervisor is None else self.supervisor.to_json(),
            "last_apply": None if self.last_apply is None else self.last_apply.to_json(),
            "services": {name: st.to_json() for name, st in sorted(self.services.items())},
            "disk": dict(self.disk),
            "dropped_requests": dict(self.dropped_requests),
            "answered_requests": {rid: dict(result) for rid, result in self.answered_requests.items()},
            "rollback": None if self.rollback is None else dict(self.rollback),
        }

    @classmethod
    def from_json(cls, data: object) -> StatusDocument:
        """The document in ``data`` (parsed JSON); StateError saying what is wrong if it is not one."""
        if not isinstance(data, Mapping):
            raise StateError("The status is not a JSON object.")
        problem = status_problem(data)
        if problem is not None:
            raise StateError(f"The status has a wrong value: {problem}.")
        supervisor, last_apply = data.get("supervisor"), data.get("last_apply")
        return cls(
            project=str(data.get("project") or ""),
            services={str(n): ServiceStatus.from_json(s) for n, s in data["services"].items()},
            release=str(data.get("release") or ""),
            generation=int(data.get("generation") or 0),
            updated_at=data.get("updated_at"),
            supervisor=None if supervisor is None else SupervisorInfo.from_json(supervisor),
            last_apply=None if last_apply is None else ApplyResult.from_json(last_apply),
            disk=dict(data.get("disk") or {}),
            dropped_requests=dict(data.get("dropped_requests") or {}),
            answered_requests={str(k): v for k, v in (data.get("answered_requests") or {}).items()
                               if isinstance(v, Mapping)},
            rollback=dict(data["rollback"]) if isinstance(data.get("rollback"), Mapping) else None,
        )


def build_status(
    *,
    project: str,
    release: str,
    generation: int,
    supervisor: SupervisorInfo,
    services: Mapping[str, ServiceStatus],
    last_apply: ApplyResult | None = None,
    disk: Mapping[str, Any] | None = None,
    updated_at: float | None = None,
    dropped_requests: Mapping[str, str] | None = None,
    answered_requests: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``status.json`` document with every key of the schema present (``StatusDocument(...).to_json()``)."""
    return StatusDocument(
        project=project, services=services, release=release, generation=generation, updated_at=updated_at,
        supervisor=supervisor, last_apply=last_apply, disk=disk or {}, dropped_requests=dropped_requests or {},
        answered_requests=answered_requests or {},
    ).to_json()


# -- the store --------------------------------------------------------------------------------


class StateStore:
    """The files of one stack under ``data_dir/project/``; the directory is created on first write."""

    def __init__(self, data_dir: Path, project: str) -> None:
        if not _SAFE_PROJECT.match(project or ""):
            raise StateError(
                f"Project name {project!r} cannot name a state directory: use letters, digits, "
                f"'_', '.' and '-', starting with a letter or digit."
            )
        self.project = project
        self.dir = Path(data_dir) / project

    @property
    def state_path(self) -> Path:
        return self.dir / "state.json"

    @property
    def status_path(self) -> Path:
        return self.dir / "status.json"

    @property
    def lock_path(self) -> Path:
        return self.dir / "supervisor.lock"

    @property
    def pid_path(self) -> Path:
        return self.dir / "supervisor.pid"

    def ensure_dir(self) -> Path:
        """Create the directory (0700) if needed and check it is ours and writable; StateError if not."""
        try:
            _makedirs_durable(self.dir, 0o700)
        except OSError as exc:
            raise StateError(
                f"Cannot create the state directory {self.dir}: {exc.strerror or exc}. "
                f"Choose a writable data directory with --data-dir, or run as a user that can write it."
            ) from exc
        self.check_dir()
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise StateError(
                f"The state directory {self.dir} is not writable. Fix its permissions, or choose "
                f"another one with --data-dir."
            )
        return self.dir

    def check_dir(self) -> bool:
        """False if the directory does not exist yet, True if it is ours; StateError if it is not.

        Ours: a directory (not a symlink), owned by the effective user, writable by nobody
        else. One that others may read or search is made 0700: an older runtime created it so.
        """
        try:
            st = os.lstat(self.dir)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"Cannot inspect the state directory {self.dir}: {exc.strerror or exc}.") from exc
        fix = "Remove it (it only holds state the supervisor rebuilds), or choose another one with --data-dir."
        owner_fix = "Run as its owner, remove it, or choose another data directory with --data-dir."
        if stat.S_ISLNK(st.st_mode):
            raise StateError(f"The state directory {self.dir} is a symbolic link; the runtime only uses a "
                             f"directory of its own. {fix}")
        if not stat.S_ISDIR(st.st_mode):
            raise StateError(f"The state directory {self.dir} is not a directory. {fix}")
        if st.st_uid != os.geteuid():
            raise StateError(
                f"The state directory {self.dir} belongs to uid {st.st_uid}, not to this user (uid "
                f"{os.geteuid()}); its pid file and requests cannot be trusted. {owner_fix}")
        if st.st_mode & 0o022:
            raise StateError(
                f"The state directory {self.dir} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                f"anyone could have planted a pid file or a request in it. {fix}")
        if st.st_mode & 0o077:
            try:
                os.chmod(self.dir, 0o700, follow_symlinks=False)
            except OSError as exc:
                raise StateError(f"Cannot make the state directory {self.dir} private (chmod 700): "
                                 f"{exc.strerror or exc}.") from exc
        return True

    @property
    def disk_path(self) -> Path:
        return self.dir / "disk.json"

    def load(self, *, on_warning: Callable[[str], None] | None = None) -> PersistedState:
        """The persisted state; empty if there is none yet.

        A corrupt ``state.json``, or one of another format version, is moved to
        ``state.json.corrupt`` (replacing an older one) and an empty state returned;
        ``on_warning`` (default: the ``armstack.state`` logger) is told.
        """
        problem, data = self._checked(self.state_path, state_problem)
        if problem is None:
            return PersistedState.from_json(data)
        self._move_aside(self.state_path, problem, "started from an empty state (restart counters reset)",
                         on_warning)
        return PersistedState()

    def check_disk_file(self, *, on_warning: Callable[[str], None] | None = None) -> None:
        """Move a corrupt ``disk.json`` aside (to ``disk.json.corrupt``) before the disk guard reads it."""
        problem, _ = self._checked(self.disk_path, disk_file_problem)
        if problem is not None:
            self._move_aside(self.disk_path, problem, "the disk guard starts afresh (image use history reset)",
                             on_warning)

    def _checked(self, path: Path, shape: Callable[[object], str | None]) -> tuple[str | None, Any]:
        """(why ``path`` is corrupt or None, its JSON); StateError if it cannot be read at all."""
        try:
            data = read_json(path, None)
        except StateError as exc:
            if not isinstance(exc.__cause__, ValueError):
                raise   # unreadable (permissions): moving it would not help
            return f"was corrupt ({exc.__cause__})", None
        return (None if data is None else shape(data)), data

    def _move_aside(self, path: Path, problem: str, consequence: str,
                    on_warning: Callable[[str], None] | None) -> Path:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except OSError as move_exc:
            raise StateError(
                f"{path} {problem} and cannot be moved aside ({move_exc.strerror}). Delete it; the supervisor "
                f"starts afresh."
            ) from move_exc
        _fsync_dir(path.parent)
        (on_warning or _log.warning)(f"{path} {problem}; moved it to {aside}, {consequence}.")
        return aside

    def save(self, state: PersistedState) -> None:
        self.ensure_dir()
        atomic_write_json(self.state_path, state.to_json())

    def write_status(self, status: Mapping[str, Any]) -> None:
        self.ensure_dir()
        atomic_write_json(self.status_path, dict(status))

    def read_status(self) -> dict[str, Any] | None:
        """The last status written, or None if no supervisor has written one yet.

        StateError if it is unreadable: not JSON, or a key the CLI relies on has the wrong type.
        """
        data = read_json(self.status_path, None)
        if data is None:
            return None
        if not isinstance(data, dict):
            raise StateError(
                f"{self.status_path} does not hold a status object. Delete it; the supervisor rewrites it."
            )
        problem = status_problem(data)
        if problem is not None:
            raise StateError(
                f"The status in {self.status_path} is unreadable: {problem}. The running supervisor rewrites it "
                f"on its next change; if this persists, delete the file."
            )
        return data

    def read_status_document(self) -> StatusDocument | None:
        """:meth:`read_status`, typed."""
        data = self.read_status()
        return None if data is None else StatusDocument.from_json(data)


# -- shapes of the files ----------------------------------------------------------------------
# Kinds: str, int, number, bool, dict, list; "?" also allows null. Keys ending in "!" are
# required; others may be missing (a file from an older runtime). Values of the wrong type are
# what turns into tracebacks far from the file, so they make the file corrupt here.

_STATE = {"version!": "int", "release!": "str", "generation!": "int", "services!": "dict", "rollback": "dict?"}
_RECORD = {"restarts": "int", "last_exit_code": "int?", "last_exit_at": "number?", "oom_killed": "bool"}
_STATUS = {"project": "str", "release": "str", "generation": "int", "updated_at": "number?", "supervisor": "dict?",
           "last_apply": "dict?", "services!": "dict", "disk": "dict?", "dropped_requests": "dict?",
           "answered_requests": "dict?", "rollback": "dict?"}
_SUPERVISOR = {"pid": "int", "started_at": "number?", "ready": "bool"}
_SERVICE = {"state!": "str", "restart": "str?", "container_id": "str?", "image": "str?", "image_id": "str?",
            "restarts": "int?", "last_exit": "int?", "last_exit_at": "number?", "oom_killed": "bool", "health": "str?",
            "backoff_until": "number?", "crash_looping": "bool", "waiting_for": "list",
            "event_to_action": "number?", "probation": "bool", "rollbacks": "int"}
_LAST_APPLY = {"generation": "int", "ok!": "bool", "error": "str?", "finished_at": "number?", "report": "dict",
               "totals": "dict", "removed": "list", "request_id": "str?"}
_DISK = {"percent": "number?", "used": "number?", "free": "number?", "total": "number?", "read_only": "bool?",
         "last_cleanup": "dict?", "refused": "dict?"}
_CLEANUP = {"at": "number", "freed_bytes": "number", "removed": "list", "reason": "str?"}
_DISK_FILE = {"pulled": "dict", "last_used": "dict", "last_cleanup": "dict?"}


def _is(value: object, kind: str) -> bool:
    if kind.endswith("?"):
        return value is None or _is(value, kind[:-1])
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool) and value == value
    return {"str": isinstance(value, str), "int": type(value) is int, "bool": isinstance(value, bool),
            "dict": isinstance(value, dict), "list": isinstance(value, list)}[kind]


_KIND_NAMES = {"str": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
               "dict": "an object", "list": "a list"}


def _shape(doc: Mapping[str, Any], shape: Mapping[str, str], where: str) -> str | None:
    for spec, kind in shape.items():
        key = spec.rstrip("!")
        if key not in doc:
            if spec.endswith("!"):
                return f"{where}{key} is missing"
            continue
        if not _is(doc[key], kind):
            wanted = _KIND_NAMES[kind.rstrip("?")] + (" or null" if kind.endswith("?") else "")
            return f"{where}{key} should be {wanted}, not {json.dumps(doc[key])[:40]}"
    return None


def _each(doc: Mapping[str, Any], kind: str, where: str) -> str | None:
    for key, value in doc.items():
        if not _is(value, kind):
            return f"{where}{key} should be {_KIND_NAMES[kind]}, not {json.dumps(value)[:40]}"
    return None


def state_problem(data: object) -> str | None:
    """Why ``data`` is not a ``state.json`` this runtime reads, or None."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    if "version" in data and data["version"] != STATE_VERSION:
        return (f"was written in format version {json.dumps(data['version'])[:20]}, which this runtime (version "
                f"{STATE_VERSION}) does not read")
    problem = _shape(data, _STATE, "")
    if problem is not None:
        return ("has no format version" if problem == "version is missing" else f"has a wrong value: {problem}")
    for name, rec in data["services"].items():
        problem = _shape(rec, _RECORD, f"services.{name}.") if isinstance(rec, dict) else (
            f"services.{name} should be an object")
        if problem is not None:
            return f"has a wrong value: {problem}"
    return None


def status_problem(data: Mapping[str, Any]) -> str | None:
    """Why ``data`` is not a status the CLI can show, or None."""
    problem = _shape(data, _STATUS, "")
    if problem is not None:
        return problem
    for name, svc in data["services"].items():
        problem = _shape(svc, _SERVICE, f"services.{name}.") if isinstance(svc, dict) else (
            f"services.{name} should be an object")
        if problem is not None:
            return problem
    for key, shape in (("supervisor", _SUPERVISOR), ("last_apply", _LAST_APPLY), ("disk", _DISK)):
        if isinstance(data.get(key), dict) and (problem := _shape(data[key], shape, f"{key}.")) is not None:
            return problem
    disk = data.get("disk") or {}
    if isinstance(disk.get("last_cleanup"), dict):
        problem = _shape(disk["last_cleanup"], _CLEANUP, "disk.last_cleanup.")
    if problem is None and isinstance(disk.get("refused"), dict):
        problem = _each(disk["refused"], "str", "disk.refused.")
    if problem is None and isinstance(data.get("dropped_requests"), dict):
        problem = _each(data["dropped_requests"], "str", "dropped_requests.")
    return problem


def disk_file_problem(data: object) -> str | None:
    """Why ``data`` is not a ``disk.json`` the disk guard (runtime.diskguard) can load, or None."""
    if not isinstance(data, dict):
        return "is not a JSON object"
    problem = _shape(data, _DISK_FILE, "")
    if problem is None:
        problem = _each(data.get("pulled") or {}, "str", "pulled.") or _each(data.get("last_used") or {}, "number",
                                                                           "last_used.")
    if problem is None and isinstance(data.get("last_cleanup"), dict):
        problem = _shape(data["last_cleanup"], _CLEANUP, "last_cleanup.")
    return None if problem is None else f"has a wrong value: {problem}"


def _makedirs_durable(path: Path, mode: int) -> None:
    """Create ``path`` (``mode``) and missing parents (default mode), each fsynced into its parent.

    Without the parent's fsync a power cut can lose a new directory with the files in it.
    """
    missing: list[Path] = []
    here = Path(path)
    while not (here.exists() or here.is_symlink()) and here.parent != here:
        missing.append(here)
        here = here.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, mode if directory == path else 0o777)
        except FileExistsError:
            continue   # made by a concurrent process meanwhile; check_dir judges the project's
        _fsync_dir(directory.parent)


def _as_int(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _as_opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _as_opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
