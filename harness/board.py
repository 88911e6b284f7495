"""``BoardDevice``: the same device API on a real board's engine, with no emulation.

``pytest --docker-host ssh://pi@board`` (or ``tcp://board:2375``) runs device tests against the
board itself: the runtime image is built here for the board's architecture and loaded over
the connection, the runtime runs as a container on the board, on the board's own engine, and
the stack's files live in a volume there. A board cannot be power-cycled through an engine,
so ``kill_engine``, ``reboot`` and ``power_cut`` say so instead of pretending.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlparse

import docker
import docker.errors

from harness import images
from harness.arch import get_arch
from harness.device import DATA_DIR, DeviceBase
from harness.errors import DeviceError, FaultError, SetupError
from harness.protocol import BOARD, CLOCK, DISK_FILL, PROCESS_FAULTS, RUNTIME_KILL, ExecResult
from harness.session import labels

BOARD_SOCKET = "/var/run/docker.sock"


def board_client(docker_host: str) -> docker.DockerClient:
    try:
        client = docker.DockerClient(base_url=docker_host, use_ssh_client=docker_host.startswith("ssh://"),
                                     timeout=300)
        client.ping()
    except (docker.errors.DockerException, OSError) as e:
        raise SetupError(f"cannot reach the board's engine at {docker_host}: {e}. Check the address, that "
                         "dockerd listens there, and for ssh:// that `ssh` to it works without a password.") from e
    return client


class BoardDevice(DeviceBase):
    """A real board (or any engine) reached over ``docker_host``; the same ``Device`` protocol as
    ``EmulatedDevice``, without the faults only an emulated device can inject (see ``capabilities``)."""

    capabilities = frozenset({BOARD, RUNTIME_KILL, PROCESS_FAULTS, DISK_FILL, CLOCK})

    def __init__(self, docker_host: str, name: str | None = None, *, keep: bool = False,
                 client: docker.DockerClient | None = None):
        self.docker_host = docker_host
        self.board = board_client(docker_host)
        # Everything runs natively on the board: no emulation factor in the timeouts (``qemu`` stays:
        # it is how this host builds the board's images).
        arch = dataclasses.replace(get_arch(str(self.board.info().get("Architecture", ""))), factor=1.0)
        super().__init__(arch, name or f"armstack-board-{uuid.uuid4().hex[:8]}", keep=keep,
                         host=client or docker.from_env())
        self.volumes = {v: f"{self.name}-{v}" for v in ("stack", "data")}

    def start(self) -> Self:
        self.runtime_image = images.build_runtime(self.arch, self.host)
        images.load_into(self.board, self.host, self.runtime_image, (self.runtime_image,))
        for vol in self.volumes.values():
            self.board.volumes.create(vol, labels=labels(self.name))
        return self

    def stop(self) -> None:
        """Take the stack down and remove what was put on the board (volumes too unless ``keep``)."""
        self._close_faults()
        runtime = None if self._runtime_c is None else self._runtime_c.get_wrapped_container()
        if runtime is not None:
            with contextlib.suppress(docker.errors.APIError):
                runtime.stop(timeout=60)   # SIGTERM: the runtime stops the stack
            with contextlib.suppress(docker.errors.NotFound):
                runtime.remove(force=True)
        self._runtime_c = None
        if not self.keep:
            for vol in self.volumes.values():
                with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                    self.board.volumes.get(vol).remove(force=True)

    @property
    def engine(self) -> docker.DockerClient:
        return self.board

    def engine_container(self) -> Any:
        raise DeviceError(f"the engine of board {self.docker_host} is not a container; use device.engine "
                          "(its docker-py client) or device.shell(...) instead")

    def _helper(self, cmd: str, *, create_only: bool = False) -> Any:
        """A short-lived container that stands for the board's shell: the host's PID namespace
        (to signal processes), the engine's data root at /var/lib/docker and /data, the stack volume."""
        root = str(self.board.info()["DockerRootDir"])
        kwargs: dict[str, Any] = dict(
            entrypoint=["sh", "-c"], command=[cmd], pid_mode="host", labels=labels(self.name),
            volumes={root: {"bind": "/var/lib/docker", "mode": "rw"},
                     f"{root}/.armstack": {"bind": "/data", "mode": "rw"},   # fill_disk's files, on the same disk
                     self.volumes["stack"]: {"bind": "/srv/armstack", "mode": "rw"}})
        if create_only:
            return self.board.containers.create(self.runtime_image, **kwargs)
        container = self.board.containers.run(self.runtime_image, detach=True, **kwargs)
        try:
            code = container.wait(timeout=300)["StatusCode"]
            return ExecResult(int(code), container.logs().decode(errors="replace"))
        finally:
            container.remove(force=True)

    def _run_shell(self, cmd: str) -> ExecResult:
        result: ExecResult = self._helper(cmd)
        return result

    def _put_archive(self, dest: str, data: bytes) -> None:
        holder = self._helper("true", create_only=True)
        try:
            holder.put_archive(dest, data)
        finally:
            holder.remove(force=True)

    def _runtime_mounts(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        mounts = {BOARD_SOCKET: {"bind": BOARD_SOCKET, "mode": "rw"},
                  self.volumes["stack"]: {"bind": "/srv/armstack", "mode": "rw"},
                  self.volumes["data"]: {"bind": "/data", "mode": "rw"}}
        return mounts, {**self.runtime_env, "DOCKER_HOST": f"unix://{BOARD_SOCKET}", "ARMSTACK_DATA_DIR": DATA_DIR}

    def _client_kw(self) -> dict[str, Any]:
        kw: dict[str, Any] = {"environment": {"DOCKER_HOST": self.docker_host}}
        if self.docker_host.startswith("ssh://"):
            kw["use_ssh_client"] = True
        return kw

    def url(self, port: int, path: str = "/") -> str:
        return f"http://{urlparse(self.docker_host).hostname}:{port}/{path.lstrip('/')}"

    def kill_runtime(self) -> None:
        pid = self.runtime_container().attrs["State"]["Pid"]
        self.shell(f"kill -9 {pid}")   # a crash: the board's engine restarts the runtime

    def _unsupported(self, what: str) -> None:
        raise FaultError(f"{what} is not possible on a real board reached over {self.docker_host}; "
                         "it needs an emulated device")

    def kill_engine(self) -> None:
        self._unsupported("killing the engine")

    def reboot(self) -> None:
        self._unsupported("a reboot")

    def power_cut(self, lose_unsynced: bool = True) -> None:
        self._unsupported("a power cut")


if TYPE_CHECKING:
    from harness.protocol import Device

    _checked: type[Device] = BoardDevice   # mypy: a board is a whole Device
