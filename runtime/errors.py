"""Errors raised by the armstack runtime.

One base class, subclasses carry data so callers can react without parsing text; each class
also carries the exit code a command that ends with it returns (``exit_code``)::

    ArmstackError                   1  (any other failure)
    ├── UsageError                  2  a flag, setting or environment variable is wrong
    │   └── SettingsError           2  a setting (flag or environment variable) has a bad value
    ├── ComposeError                2  the compose file is wrong (carries every problem found)
    ├── EngineError                 1  the Docker engine refused or failed an operation
    │   ├── EngineUnreachable       3  the engine does not answer at all
    │   ├── DiskFullError           1  an operation would not fit, or hit ENOSPC
    │   └── BuildContextError       1  a service's build context cannot be sent (also an OSError)
    ├── StateError                  1  the persisted state directory is unusable
    ├── TransferError               1  `armstack push` could not ship a release to its target
    └── SupervisorError             4  talking to a running supervisor failed

The exit codes themselves (``EXIT_*``) are defined here once; the CLI's help and the README
list them. Messages are full sentences that say what is wrong and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

EXIT_OK = 0
EXIT_FAILED = 1          # apply failed, a service is not running/healthy, the state is unreadable
EXIT_USAGE = 2           # invalid compose file, or a usage error
EXIT_ENGINE = 3          # the Docker engine is unreachable
EXIT_CONFLICT = 4        # another supervisor holds the project, or it did not apply a request
EXIT_INTERRUPTED = 130   # Ctrl-C


class ArmstackError(Exception):
    """Base of every error the runtime raises on purpose."""

    exit_code: ClassVar[int] = EXIT_FAILED


class UsageError(ArmstackError):
    """A command-line flag, setting or environment variable has a value that cannot be used."""

    exit_code = EXIT_USAGE


class SettingsError(UsageError, ValueError):
    """A flag or environment variable has a value the runtime cannot use (exit 2)."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a compose file: where it is and what was expected."""

    file: str
    message: str
    service: str | None = None
    field: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        path = ".".join(p for p in ("services" if self.service else None, self.service, self.field) if p)
        return f"{where}: {path + ': ' if path else ''}{self.message}"


class ComposeError(ArmstackError):
    """The compose file cannot be used; ``problems`` lists every error found, not just the first."""

    exit_code = EXIT_USAGE

    def __init__(self, problems: list[Problem], warnings: list[Problem] | tuple[Problem, ...] = ()):
        self.problems = list(problems)
        self.warnings = list(warnings)  # found in the same load: still worth showing
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"the compose file has {len(self.problems)} error(s):\n{lines}")


class EngineError(ArmstackError):
    """The Docker engine refused or failed an operation."""

    def __init__(self, message: str, *, service: str | None = None):
        self.service = service
        super().__init__(message)


class EngineUnreachable(EngineError):
    """The Docker engine does not answer (not running, wrong DOCKER_HOST, socket refused)."""

    exit_code = EXIT_ENGINE


class DiskFullError(EngineError):
    """An image build, pull or container would not fit on the engine's disk."""

    def __init__(self, message: str, *, service: str | None = None, needed: int = 0, free: int = 0):
        self.needed = needed
        self.free = free
        super().__init__(message, service=service)


class BuildContextError(EngineError, OSError):
    """A service's build context cannot be read or sent as it is: the build of that service fails.

    Also an ``OSError``: code that treats an unreadable context as unknown (no build hash, no
    size estimate) and leaves the error to the build itself handles this one the same way.
    """

    def __init__(self, message: str, *, service: str | None = None, path: str | None = None):
        self.path = path
        super().__init__(message, service=service)

    def __str__(self) -> str:
        # OSError's own __str__ would format errno/strerror; the message is the sentence.
        return str(self.args[0]) if self.args else ""


class StateError(ArmstackError):
    """The state directory cannot be read or written."""


class TransferError(ArmstackError):
    """A release could not be shipped to its target (``armstack push``); the target keeps its release."""


class SupervisorError(ArmstackError):
    """A running supervisor could not be reached or did not apply a request in time."""

    exit_code = EXIT_CONFLICT
