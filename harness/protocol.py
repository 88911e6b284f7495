"""What a device is to tests and faults: the ``Device`` protocol and the capabilities a kind has.

Two kinds implement it without inheriting from each other: :class:`~harness.device.EmulatedDevice`
(an engine and the runtime in containers on this host) and :class:`~harness.board.BoardDevice`
(a real board's engine). Code that takes ``Device`` works on both; a fault that only one kind
can inject is named by a capability, so a test can ask first (``POWER in device.capabilities``)
instead of checking the class, as testcontainers' wait strategies take a ``WaitStrategyTarget``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from runtime.state import ServiceStatus, StatusDocument

if TYPE_CHECKING:
    import docker

    from harness.arch import Arch
    from harness.report import UpdateReport

T = TypeVar("T")

# Capabilities: faults and abilities only some kinds of device have.
EMULATED = "emulated"          # runs under emulation on this host (timeouts scale with the arch)
BOARD = "board"                # a real board reached over its engine
POWER = "power"                # reboot(), power_cut()
ENGINE_KILL = "engine-kill"    # kill_engine()
RUNTIME_KILL = "runtime-kill"  # kill_runtime()
DISK_FILL = "disk-fill"        # fill_disk(), free_disk()
PROCESS_FAULTS = "process-faults"   # crash(), oom(), crash_loop(), make_unhealthy()
# card_latency(), card_bandwidth(), card_errors(), card_read_only(), heal_card(), card_state(), and
# a power_cut() that loses what no flush reached (harness.card). A host without /dev/fuse gives the
# card no cache: then card_state() and the card faults raise FaultError and nothing is lost.
CARD_FAULTS = "card-faults"

# One service as the runtime reports it: the status document's own type (``.status`` is ``.state``).
ServiceState = ServiceStatus


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


@dataclass(frozen=True)
class DiskUsage:
    used: int
    total: int
    available: int = 0

    @property
    def percent(self) -> float:
        """Used share of the space a user can fill, as ``df`` reports it."""
        usable = self.used + self.available if self.available else self.total
        return 100.0 * self.used / usable if usable else 0.0


@runtime_checkable
class FaultTarget(Protocol):
    """What the faults of a service (``harness.faults``) need of a device."""

    name: str

    @property
    def engine(self) -> docker.DockerClient: ...
    def shell(self, cmd: str, check: bool = True) -> ExecResult: ...
    def exec(self, service: str, cmd: str | list[str]) -> ExecResult: ...
    def find_container(self, service: str, *, running: bool = True) -> Any | None: ...
    def container(self, service: str, *, running: bool = True) -> Any: ...
    def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str,
                 describe: Callable[[], str] | None = None, interval: float = 0.1) -> T: ...


@runtime_checkable
class Device(FaultTarget, Protocol):
    """A device that runs one stack under the armstack runtime."""

    name: str
    arch: Arch
    project: str | None
    capabilities: frozenset[str]

    # -- lifecycle and time --
    def start(self) -> Device: ...
    def stop(self) -> None: ...
    def timeout(self, seconds: float) -> float: ...
    def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str,
                 describe: Callable[[], str] | None = None, interval: float = 0.1) -> T: ...

    # -- engine access --
    @property
    def engine(self) -> docker.DockerClient: ...
    def engine_container(self) -> Any: ...
    def runtime_container(self) -> Any: ...
    def shell(self, cmd: str, check: bool = True) -> ExecResult: ...

    # -- the stack --
    def deploy(self, path: str | os.PathLike[str], *, profiles: Sequence[str] = ()) -> UpdateReport: ...
    def status(self) -> dict[str, Any] | None: ...
    def status_document(self) -> StatusDocument | None: ...
    def services(self) -> dict[str, ServiceStatus]: ...
    def find_container(self, service: str, *, running: bool = True) -> Any | None: ...
    def container(self, service: str, *, running: bool = True) -> Any: ...
    def exec(self, service: str, cmd: str | list[str]) -> ExecResult: ...
    def url(self, port: int, path: str = "/") -> str: ...
    def logs(self, service: str | None = None) -> list[str]: ...
    def wait_until_running(self, service: str, timeout: float = 30.0) -> float: ...
    def wait_for_log(self, service: str, pattern: str, timeout: float = 30.0, *, since: str = "now") -> str: ...
    def wait_for_port(self, service: str, port: int, timeout: float = 30.0) -> None: ...
    def wait_for_http(self, port: int, path: str = "/", status: int = 200, timeout: float = 30.0) -> str: ...

    # -- disk --
    def disk_usage(self) -> DiskUsage: ...
    def fill_disk(self, percent: float) -> DiskUsage: ...
    def free_disk(self) -> DiskUsage: ...

    # -- faults (see harness.faults) --
    def crash(self, service: str, signal: str = "SIGKILL") -> str: ...
    def oom(self, service: str, timeout: float = 60.0) -> str: ...
    def crash_loop(self, service: str, times: int = 5, timeout: float = 60.0) -> str: ...
    def make_unhealthy(self, service: str, command: str, timeout: float = 60.0) -> str: ...
    def kill_engine(self) -> None: ...
    def kill_runtime(self) -> None: ...
    def reboot(self) -> None: ...
    def power_cut(self, lose_unsynced: bool = True) -> None: ...
