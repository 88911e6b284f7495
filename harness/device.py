"""``EmulatedDevice``: an ARM device made of two containers on the host engine.

::

    host engine (native)
    ├── <name>-engine   native dockerd; /var/lib/docker on a loop-mounted ext4 "SD card"
    │     └── stack containers (arm64/armv7 images, run by QEMU through binfmt_misc)
    └── <name>-runtime  the armstack runtime image of the device's arch, on the engine's socket

An arm64 dockerd cannot start containers under qemu-user, so the engine runs natively and all
user space that matters (the runtime and every stack image) runs as the device's arch. The
card is an image file on a named volume: reboot and power cut keep images and data.

What every kind of device shares (the runtime container, deploys, status, waits, the faults of
a service) is :class:`DeviceBase`; :class:`~harness.board.BoardDevice` builds on it too. Both
are a :class:`harness.protocol.Device`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import signal as signals
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import docker  # noqa: E402
import docker.errors  # noqa: E402
from testcontainers.core.container import DockerContainer  # noqa: E402

from harness import buildcache, cardstore, faults, images, netfaults, procfaults, reaper, snapshots  # noqa: E402
from harness.arch import Arch, check_emulation, get_arch  # noqa: E402
from harness.archive import read_single_file, tar_bytes, tar_directory  # noqa: E402
from harness.capabilities import engine_run_kwargs  # noqa: E402
from harness.card import Card, CardState, ErrorKind  # noqa: E402
from harness.errors import DeployError, DeviceError, FaultError  # noqa: E402
from harness.protocol import (  # noqa: E402
    CARD_FAULTS,
    CLOCK,
    DISK_FILL,
    EMULATED,
    ENGINE_KILL,
    NET_FAULTS,
    POWER,
    PROCESS_FAULTS,
    RUNTIME_KILL,
    STACK_CLOCK,
    Device,
    DiskUsage,
    ExecResult,
    ServiceState,
)
from harness.report import UpdateReport  # noqa: E402
from harness.session import OWNER, labels, owner_alive, sweep  # noqa: E402
from harness.settings import HarnessSettings  # noqa: E402
from harness.waits import first_match, listening_ports, wait_for  # noqa: E402
from runtime.compose.source import StackSource  # noqa: E402
from runtime.engine.reading import engine_time  # noqa: E402
from runtime.errors import SupervisorError  # noqa: E402
from runtime.labels import STACK as STACK_LABEL  # noqa: E402
from runtime.state import StatusDocument  # noqa: E402

__all__ = ["DeviceBase", "DiskUsage", "EmulatedDevice", "ExecResult", "ServiceState", "parse_size"]

SHARED_ROOT = HarnessSettings.from_environ().shared_mounts
CARD_DIR = "/media/sdcard"            # in both containers: the shared mount directory
CARD_MOUNT = f"{CARD_DIR}/card"       # where the engine mounts the card, seen by the runtime too
STACKS_DIR = "/srv/armstack/stacks"   # same path in both containers, so bind mounts resolve alike
DATA_DIR = "/data/armstack"
SOCKET = "unix:///run/armstack/docker.sock"
START_GATES = "/srv/armstack"          # the stack volume: the runtime's and the device shell's
START_GATE_ENV = "ARMSTACK_START_GATE"
COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
T = TypeVar("T")


def parse_size(text: str) -> int:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", text.lower())
    if not m:
        raise ValueError(f"bad size {text!r}: expected e.g. 768M or 2G")
    return int(float(m.group(1)) * 1024 ** " kmgt".index(m.group(2) or " "))


def compose_file(path: str | os.PathLike[str]) -> Path:
    """The compose file a deploy of ``path`` (a file, or a directory holding one) reads."""
    src = Path(path).resolve()
    compose = src if src.is_file() else next((src / n for n in COMPOSE_NAMES if (src / n).exists()), None)
    if compose is None:
        raise DeployError(f"{src} has none of {', '.join(COMPOSE_NAMES)}")
    return compose


def stack_source(path_or_source: str | os.PathLike[str] | StackSource, profiles: Sequence[str] = ()) -> StackSource:
    """What a deploy names, as a :class:`StackSource` (host paths): the source itself, or a path
    (a compose file, or a directory holding one) with ``profiles``, the convenience of
    ``deploy(path, profiles=[...])``. Both at once would leave two lists of profiles to choose from."""
    if isinstance(path_or_source, StackSource):
        if profiles:
            raise DeployError("give the profiles in the StackSource or as profiles=, not both")
        return path_or_source
    return StackSource.of(path_or_source, profiles=profiles)


# Longest path of a unix socket (sun_path holds 108 bytes, its last one the terminating NUL).
UNIX_PATH_MAX = 107


def engine_socket_path(mountpoint: str | None) -> Path | None:
    """Where the host reaches a device engine's socket, given the host path of the volume it is
    made in (``/run/armstack`` in the engine); None where a client could not connect to it."""
    if not mountpoint:
        return None
    path = Path(mountpoint) / "docker.sock"
    return path if len(os.fsencode(path)) <= UNIX_PATH_MAX else None


def local_volume_path(host: docker.DockerClient, volume: str) -> str | None:
    """The host directory of a volume of the host engine, if this process can use it (root and
    an engine on this machine, as for :func:`share_card_directory`)."""
    if os.geteuid() != 0 or not str(host.api.base_url).startswith("http+docker://"):
        return None
    mountpoint = host.volumes.get(volume).attrs.get("Mountpoint")
    return mountpoint if mountpoint and os.path.isdir(mountpoint) else None


def share_card_directory(name: str, host: docker.DockerClient) -> Path | None:
    """A host directory with shared mount propagation, through which the runtime sees the card.

    Needs root and an engine on this machine (the directory is bound into containers by path).
    Without them the runtime falls back to asking the engine for the card's free space.
    """
    # docker-py names every unix-socket engine "http+docker://localhost"; tcp/ssh engines are remote.
    if os.geteuid() != 0 or not str(host.api.base_url).startswith("http+docker://"):
        return None
    path = SHARED_ROOT / name
    try:
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True, capture_output=True)
        subprocess.run(["mount", "--make-rshared", str(path)], check=True, capture_output=True)
        (path / ".owner").write_text(labels()[OWNER])
    except (OSError, subprocess.CalledProcessError):
        release_card_directory(path)
        return None
    return path


def sweep_card_directories(*, mine: bool = False) -> list[str]:
    """Release shared card directories whose owner process is gone (or all of this process's)."""
    released = []
    store = cardstore.open_store(create=False)
    if store is not None:
        released += store.sweep(mine=mine)
    if SHARED_ROOT.is_dir():
        for path in SHARED_ROOT.iterdir():
            try:
                owner = (path / ".owner").read_text()
            except OSError:
                owner = ""
            if (mine and owner == labels()[OWNER]) or not owner_alive(owner):
                release_card_directory(path)
                released.append(str(path))
    return released


def release_card_directory(path: Path) -> None:
    """Unmount everything under a shared card directory (a killed engine's mount outlives it) and remove it."""
    subprocess.run(["umount", "-R", "-l", str(path)], capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _with_mounts(container: DockerContainer, mounts: dict[str, dict[str, str]]) -> DockerContainer:
    for source, spec in mounts.items():
        container.with_volume_mapping(source, spec["bind"], spec["mode"])
    return container


class DeviceBase:
    """What every kind of device shares: the runtime container, the stack on it, its status,
    waits and the faults of a single service. A kind provides its engine, its shell, where a
    stack's files go and how the runtime container is mounted (see :class:`EmulatedDevice`
    and :class:`~harness.board.BoardDevice`); both satisfy :class:`harness.protocol.Device`."""

    capabilities: frozenset[str] = frozenset({PROCESS_FAULTS, DISK_FILL, CLOCK})

    def __init__(self, arch: Arch, name: str, *, keep: bool, host: docker.DockerClient) -> None:
        self.arch = arch
        self.name = name
        self.keep = keep
        self.host = host
        # The deployed stack as the runtime reads it: its files on the device, project, profiles.
        self.source: StackSource | None = None
        self.runtime_image = ""
        self.volumes: dict[str, str] = {}
        self._runtime_c: DockerContainer | None = None
        self._log_start = 0   # runtime log lines from before the last reset(): not this test's
        self._net: netfaults.NetworkFaults | None = None
        self._starved: dict[str, procfaults.Starved] = {}
        # More environment for the runtime, read when it starts. A test's deploy does not wait out
        # the runtime's 60 s probation of real boards: devices start with it off, and a test of
        # rollback turns it on per service (label ``io.armstack.probation``) or here.
        self.runtime_env: dict[str, str] = {"ARMSTACK_PROBATION": "0"}

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    # ---- time ------------------------------------------------------------------------
    def timeout(self, seconds: float) -> float:
        """A timeout for work that runs under emulation, scaled by the arch's slowdown."""
        return seconds * self.arch.factor

    def wait_for(self, probe: Callable[[], T | None], timeout: float, what: str,
                 describe: Callable[[], str] | None = None, interval: float = 0.1) -> T:
        """:func:`harness.waits.wait_for` with ``timeout`` scaled like the device's own waits."""
        return wait_for(probe, self.timeout(timeout), what, describe=describe, interval=interval)

    # ---- engine access ---------------------------------------------------------------
    @property
    def engine(self) -> docker.DockerClient:
        """A docker-py client of the engine the stack runs on."""
        raise NotImplementedError

    def engine_container(self) -> Any:
        """The container the device's engine runs in (docker-py object, freshly reloaded)."""
        raise NotImplementedError

    def runtime_container(self) -> Any:
        """The armstack runtime's container (docker-py object, freshly reloaded); DeviceError before
        the first deploy."""
        return _reloaded(self._runtime_c, "runtime", self.name)

    def shell(self, cmd: str, check: bool = True) -> ExecResult:
        """Run a shell command on the device itself (where the SD card is /data and the engine's
        data root /var/lib/docker). ``check``: DeviceError, with the output, if it exits non-zero."""
        res = self._run_shell(cmd)
        if check and res.exit_code != 0:
            raise DeviceError(f"`{cmd}` failed on device {self.name} (exit {res.exit_code}): {res.output.strip()}")
        return res

    def _run_shell(self, cmd: str) -> ExecResult:
        raise NotImplementedError

    def _put_archive(self, dest: str, data: bytes) -> None:
        """Unpack a tar into a directory of the device's stack storage."""
        raise NotImplementedError

    def _runtime_mounts(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Volumes and environment of the runtime container."""
        raise NotImplementedError

    def _client_kw(self) -> dict[str, Any]:
        """docker-py settings of the engine the runtime container runs on."""
        return {}

    def url(self, port: int, path: str = "/") -> str:
        """The address, from the host, of a port a stack publishes on the device."""
        raise NotImplementedError

    @staticmethod
    def _tail(container: Any, n: int = 30) -> str:
        return container.logs(tail=n).decode(errors="replace")

    # ---- stacks ----------------------------------------------------------------------
    @property
    def project(self) -> str | None:
        """The deployed stack's project (None before the first deploy)."""
        return self.source.project if self.source is not None else None

    def deploy(self, path_or_source: str | os.PathLike[str] | StackSource, *,
               profiles: Sequence[str] = ()) -> UpdateReport:
        """Copy a stack onto the device and have its runtime apply it; returns the runtime's report.

        ``path_or_source`` is a :class:`~runtime.compose.source.StackSource` (its files, in merge
        order, all in or below the first one's directory, which is what is copied; its project and
        profiles), or a compose file or directory: ``profiles`` then enables compose profiles
        (``--profile``) as ``StackSource.of(path, profiles=profiles)`` would. The source holds for
        this deploy and the runtime's later restarts; a later deploy names its own. Its variables
        (``env``) are used to check the stack here; the runtime reads the device's own.

        The first deploy starts the runtime (``armstack up``) and returns the report of its first
        apply from the status; later ones run ``armstack apply --json`` in the runtime and parse
        what it prints. Both are the same JSON, typed (it is still a mapping over the JSON too).
        """
        from runtime.compose.loader import load_source
        from runtime.errors import ComposeError

        source = stack_source(path_or_source, profiles)
        files = [compose_file(p) for p in source.paths]
        compose = files[0]
        try:
            project = load_source(source).stack.project
        except ComposeError as e:
            raise DeployError(f"the stack at {compose} is invalid", str(e)) from e
        if self.project not in (None, project):
            raise DeployError(f"device {self.name} already runs stack {self.project!r}; one stack per device")
        outside = [str(f) for f in files if not f.is_relative_to(compose.parent)]
        if outside:
            raise DeployError(f"only the directory of {compose} is copied to the device; "
                              f"{', '.join(outside)} is not in it")
        stack_dir = f"{STACKS_DIR}/{project}"
        self.shell(f"rm -rf {stack_dir}.new && mkdir -p {stack_dir}.new")
        self._put_archive(f"{stack_dir}.new", tar_directory(compose.parent, "."))
        # Swap in whole, so a runtime reading the directory never sees half a stack.
        self.shell(f"rm -rf {stack_dir}.old; [ ! -d {stack_dir} ] || mv {stack_dir} {stack_dir}.old; "
                       f"mv {stack_dir}.new {stack_dir}; rm -rf {stack_dir}.old")
        on_device = [f"{stack_dir}/{f.relative_to(compose.parent).as_posix()}" for f in files]
        self.source = dataclasses.replace(source.pinned(on_device), project=project, env=None)
        put_images = self._image_loader(source)
        if self._runtime_c is None:
            return self._start_runtime(put_images)
        if put_images is not None:
            put_images()
        return self._apply()

    def _image_loader(self, source: StackSource) -> Callable[[], object] | None:
        """What puts images into the engine before the runtime plans the stack ``source`` names
        (host paths), or None: nothing here (a device kind with a cache of images says what)."""
        return None

    def _stack_args(self) -> list[str]:
        """The deployed stack's source as the runtime's CLI takes it (``-f``, ``-p``, ``--profile``...)."""
        assert self.source is not None
        return self.source.cli_args()

    def _start_runtime(self, put_images: Callable[[], object] | None = None) -> UpdateReport:
        """Start the runtime (``armstack up`` on the deployed stack) and wait for its first apply.

        ``put_images`` runs while the runtime's Python starts (seconds under emulation, most of a
        deploy whose images are ready): the runtime imports its modules and waits at a start gate
        (harness/assets/clock_sitecustomize.py) until ``put_images`` has returned, so it plans with
        them in the engine, as if they had been loaded before it started."""
        mounts, env = self._runtime_mounts()
        env = {**env, **self._clock_env()}
        gate = f"{START_GATES}/.start-{uuid.uuid4().hex[:12]}" if put_images is not None else None
        if gate is not None:
            env[START_GATE_ENV] = gate   # a file only this start waits for: never one left from before
        self._runtime_c = _with_mounts(
            DockerContainer(self.runtime_image, name=f"{self.name}-runtime", docker_client_kw=self._client_kw(),
                            env=env)
            .with_command(["up", *self._stack_args(), "--data-dir", DATA_DIR])
            .with_kwargs(labels=labels(self.name), restart_policy={"Name": "unless-stopped"},
                         stop_signal="SIGTERM", platform=self.arch.platform),
            mounts)
        reaper.start(self._runtime_c)
        if put_images is not None:
            try:
                put_images()
            finally:
                # Kept afterwards: a restart of the runtime (its container's policy) finds the gate open.
                self.shell(f"touch {gate}")
        status = self._wait_applied(1)
        return UpdateReport.from_json(status.get("last_apply"))

    def _wait_applied(self, generation: int) -> dict[str, Any]:
        def applied() -> dict[str, Any] | None:
            rt = self.runtime_container()
            if rt.status == "exited" or rt.attrs["RestartCount"] > 0:
                raise DeployError(f"the runtime on device {self.name} exited while applying the stack",
                                  self._tail(rt))
            st = self.status()
            last = (st or {}).get("last_apply") or {}
            return st if st and last.get("generation", 0) >= generation else None

        status = wait_for(applied, self.timeout(120), "the runtime to apply the stack",
                          describe=lambda: self._tail(self.runtime_container()), interval=0.25)
        last = status.get("last_apply") or {}
        if not last.get("ok", False):
            raise DeployError(f"the runtime on device {self.name} failed to apply the stack",
                              str(last.get("error") or self._tail(self.runtime_container())))
        return status

    def _apply(self) -> UpdateReport:
        code, out = self.runtime_container().exec_run(
            ["armstack", "apply", *self._stack_args(), "--data-dir", DATA_DIR, "--json"],
            environment={"DOCKER_HOST": SOCKET}, demux=True)
        stdout, stderr = ((out[0] or b"").decode(), (out[1] or b"").decode())
        if code != 0:
            raise DeployError(f"the runtime on device {self.name} rejected the stack (exit {code})",
                              (stderr + stdout).strip())
        try:
            return UpdateReport.from_json(json.loads(stdout))
        except ValueError:
            return UpdateReport.from_json({"output": stdout})

    def _forget_history(self) -> None:
        """Have the running runtime forget its services' history and apply the stack again:
        ``armstack apply --reset``'s request (runtime.control), handed over here without the
        CLI, whose Python start-up under emulation would cost seconds. Restart counts, backoff,
        probation and rollback memory are then as right after the first deploy."""
        from runtime.control import ApplyRequest, hand_off, next_generation

        assert self.source is not None and self.project
        state_dir = f"{DATA_DIR}/{self.project}"
        rt = self.runtime_container()
        req = ApplyRequest(self.source, next_generation(self.status()), reset=True)
        bits, _ = rt.get_archive(f"{state_dir}/supervisor.pid")
        pid = int(json.loads(read_single_file(bits)))

        def write_json(path: Path, doc: Any) -> None:
            # In place, not renamed: the supervisor reads requests when signalled, after this.
            rt.put_archive(state_dir, tar_bytes(path.name, json.dumps(doc).encode(), mode=0o600))

        def kill(pid: int, sig: int) -> None:
            code, out = rt.exec_run(["sh", "-c", f"kill -{int(sig)} {int(pid)}"])   # the shell's own kill
            if code != 0:
                raise ProcessLookupError(out.decode(errors="replace").strip())

        status = hand_off(req, state_dir=Path(state_dir), pid=pid, read_status=self.status, write_json=write_json,
                          supervisor_running=lambda: self.runtime_container().status == "running",
                          timeout=self.timeout(120), kill=kill)
        last = status.get("last_apply") or {}
        if not last.get("ok", False):
            raise DeployError(f"the runtime on device {self.name} failed to apply the stack after forgetting "
                              "its history", str(last.get("error") or self._tail(self.runtime_container())))

    def status(self) -> dict[str, Any] | None:
        """The runtime's status document as JSON (None before the first apply)."""
        if self.project is None or self._runtime_c is None:
            return None
        try:
            bits, _ = self.runtime_container().get_archive(f"{DATA_DIR}/{self.project}/status.json")
        except docker.errors.NotFound:
            return None
        return dict(json.loads(read_single_file(bits)))

    def status_document(self) -> StatusDocument | None:
        """The runtime's status document, typed (None before the first apply)."""
        data = self.status()
        return None if data is None else StatusDocument.from_json(data)

    def services(self) -> dict[str, ServiceState]:
        """The runtime's view of each service (``.status``, ``.restarts``, ``.last_exit``, ...)."""
        doc = self.status_document()
        return {} if doc is None else dict(doc.services)

    def find_container(self, service: str, *, running: bool = True) -> Any | None:
        """The device-engine container of a service (docker-py object), or None."""
        filters: dict[str, Any] = {"label": [f"io.armstack.service={service}"]}
        if self.project:
            filters["label"].append(f"io.armstack.stack={self.project}")
        found = self.engine.containers.list(all=not running, filters=filters)
        return found[0] if found else None

    def container(self, service: str, *, running: bool = True) -> Any:
        """The device-engine container of a service; FaultError when there is none."""
        found = self.find_container(service, running=running)
        if found is None:
            raise FaultError(f"service {service!r} has no {'running ' if running else ''}container on {self.name}")
        return found

    def wait_until_running(self, service: str, timeout: float = 30.0) -> float:
        """Wait until the service's container runs (and is healthy if it has a healthcheck).

        Running is not listening: a service may run for seconds before it accepts connections.
        Use :meth:`wait_for_port`, :meth:`wait_for_http` or :meth:`wait_for_log` for that."""
        start = time.monotonic()

        def running() -> bool:
            c = self.find_container(service)
            if c is None:
                return False
            health = c.attrs["State"].get("Health", {}).get("Status")
            return c.status == "running" and health in (None, "healthy")

        def describe() -> str:
            state = self.services().get(service)
            lines = [ln for ln in self.logs(service)][-20:]
            return f"state of {service}: {state}\nlast log lines:\n" + "\n".join(lines)

        wait_for(running, self.timeout(timeout), f"service {service!r} on {self.name} to be running",
                 describe=describe)
        return time.monotonic() - start

    def wait_for_log(self, service: str, pattern: str, timeout: float = 30.0, *, since: str = "now") -> str:
        """Wait for a line of the service's prefixed log (``service | line``) that ``pattern``
        (a regex, ``re.search``) matches; returns the line. ``since="now"`` counts only lines
        printed after the call, ``"start"`` the whole log."""
        if since not in ("now", "start"):
            raise ValueError(f"since must be 'now' or 'start', not {since!r}")
        regex = re.compile(pattern)
        start = len(self.logs(service)) if since == "now" else 0

        def describe() -> str:
            return "last log lines:\n" + "\n".join(self.logs(service)[-20:])

        return wait_for(lambda: first_match(self.logs(service), regex, start), self.timeout(timeout),
                        f"a log line of {service!r} on {self.name} matching {pattern!r}", describe=describe)

    def wait_for_port(self, service: str, port: int, timeout: float = 30.0) -> None:
        """Wait until the service listens on TCP ``port`` inside its own network namespace.

        Read from the device's side (``/proc/<pid>/net/tcp``), so it needs nothing in the image
        and does not depend on the port being published."""
        def listening() -> bool:
            pid = int(self.container(service).attrs["State"]["Pid"])
            out = self.shell(f"cat /proc/{pid}/net/tcp /proc/{pid}/net/tcp6 2>/dev/null", check=False).output
            return port in listening_ports(out)

        wait_for(listening, self.timeout(timeout), f"service {service!r} on {self.name} to listen on port {port}",
                 describe=lambda: f"state of {service}: {self.services().get(service)}")

    def wait_for_http(self, port: int, path: str = "/", status: int = 200, timeout: float = 30.0) -> str:
        """Wait until ``GET url(port, path)`` from the host answers ``status``; returns the body."""
        url = self.url(port, path)

        def answered() -> str | None:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    code, body = r.status, r.read()
            except urllib.error.HTTPError as e:
                code, body = e.code, e.read()
            # A matching empty body still ends the wait (" "): the answer is what was waited for.
            return (body.decode(errors="replace") or " ") if code == status else None

        return wait_for(answered, self.timeout(timeout), f"GET {url} to answer {status}")

    def exec(self, service: str, cmd: str | list[str]) -> ExecResult:
        argv = ["sh", "-c", cmd] if isinstance(cmd, str) else cmd
        code, out = self.container(service).exec_run(argv)
        return ExecResult(code, out.decode(errors="replace"))

    def logs(self, service: str | None = None) -> list[str]:
        """The runtime's prefixed output lines (``service | line``), optionally of one service."""
        if self._runtime_c is None:
            return []
        text = _ANSI.sub("", self.runtime_container().logs().decode(errors="replace"))
        lines = text.splitlines()[self._log_start:]
        if service is None:
            return lines
        return [ln for ln in lines if ln.split(" | ", 1)[0].strip() == service and " | " in ln]

    # ---- disk ------------------------------------------------------------------------
    def disk_usage(self) -> DiskUsage:
        out = self.shell("df -B1 --output=used,size,avail /var/lib/docker | tail -n 1").output.split()
        return DiskUsage(used=int(out[0]), total=int(out[1]), available=int(out[2]))

    def fill_disk(self, percent: float) -> DiskUsage:
        """Fill the SD card to ``percent`` used with a file nothing on the device owns."""
        usage = self.disk_usage()
        need = int((usage.used + usage.available) * percent / 100) - usage.used
        if need > 0:
            self.shell(f"fallocate -l {need} /data/armstack-fill.$(date +%s%N)")
        return self.disk_usage()

    def free_disk(self) -> DiskUsage:
        self.shell("rm -f /data/armstack-fill.*")
        return self.disk_usage()

    # ---- faults of a service (harness.faults) -----------------------------------------
    def crash(self, service: str, signal: str = "SIGKILL") -> str:
        """A real crash: signal the service's main process from the device (not `docker kill`,
        which the engine counts as a manual stop). Returns the container id."""
        return faults.crash(self, service, signal)

    def oom(self, service: str, timeout: float = 60.0) -> str:
        """A real crash by the kernel's OOM killer (the service needs a mem_limit): see harness.faults."""
        return faults.oom(self, service, timeout)

    def crash_loop(self, service: str, times: int = 5, timeout: float = 60.0) -> str:
        """Real crashes in a row: SIGKILL the service each time it runs again; see harness.faults."""
        return faults.crash_loop(self, service, times, timeout)

    def make_unhealthy(self, service: str, command: str, timeout: float = 60.0) -> str:
        """Run a stack's own switch that fails the service's healthcheck; nothing is stopped."""
        return faults.make_unhealthy(self, service, command, timeout)

    # ---- network faults (harness.netfaults): kept applied across restarts until healed -----
    def network_faults(self) -> netfaults.NetworkFaults:
        if self._net is None:
            self._net = netfaults.NetworkFaults(self, native=NET_FAULTS in self.capabilities)
        return self._net

    def partition(self, a: str, b: str) -> None:
        """Services ``a`` and ``b`` can no longer exchange packets (each still reaches the rest)."""
        self.network_faults().partition(a, b)

    def isolate(self, service: str) -> None:
        """``service`` is cut from the other services and the outside (loopback stays)."""
        self.network_faults().isolate(service)

    def dns_failure(self) -> None:
        """Name lookups fail in every service (the embedded resolver 127.0.0.11 rejects)."""
        self.network_faults().dns_failure()

    def latency(self, service: str, ms: float, jitter: float = 0.0) -> None:
        """Delay the service's packets (netem); FaultError saying why where the kernel has none."""
        self.network_faults().shape(service, delay_ms=ms, jitter_ms=jitter)

    def loss(self, service: str, percent: float) -> None:
        """Drop ``percent`` % of the service's packets (netem)."""
        self.network_faults().shape(service, loss_percent=percent)

    def bandwidth(self, service: str, kbit: int) -> None:
        """Cap the service's outgoing rate at ``kbit`` kbit/s (netem rate)."""
        self.network_faults().shape(service, rate_kbit=kbit)

    def netem_support(self) -> str | None:
        """None where latency()/loss()/bandwidth() work on this device, else why not."""
        return self.network_faults().netem_support()

    def heal_network(self) -> None:
        """Lift every network fault."""
        if self._net is not None:
            self._net.heal()

    # ---- process and time faults (harness.procfaults) ---------------------------------
    def pause(self, service: str) -> str:
        """Freeze the service (docker pause); returns its container id."""
        return procfaults.pause(self, service)

    def resume(self, service: str) -> str:
        """Thaw a paused service."""
        return procfaults.resume(self, service)

    def starve_cpu(self, service: str, cpus: float = 0.05) -> str:
        """Cap the service at ``cpus`` CPUs (docker update); returns its container id."""
        self._starved.setdefault(service, procfaults.starve_cpu(self, service, cpus))
        return self._starved[service].container_id

    def heal_cpu(self, service: str | None = None) -> None:
        """Give the starved service (or every one) its CPU limits back."""
        for name in [service] if service else list(self._starved):
            if name in self._starved:
                procfaults.heal_cpu(self, self._starved.pop(name))

    def clock_jump(self, seconds: float) -> float:
        """Move the runtime's wall clock by ``seconds``, and the stack's containers' (glibc programs)
        where the device can (``stack-clock``); monotonic clocks untouched. Returns the offset
        from the real clock."""
        return procfaults.clock_jump(self, seconds)

    def heal_clock(self) -> None:
        """Put the wall clocks clock_jump() moved back on the real one."""
        procfaults.set_clock_offset(self, 0.0)

    def _clock_env(self) -> dict[str, str]:
        """The runtime container's environment for clock_jump(), with the hook put in place."""
        self.shell(procfaults.install_clock_script())
        return procfaults.clock_env(self.host.images.get(self.runtime_image).attrs["Config"].get("Env"))

    def _close_faults(self) -> None:
        if self._net is not None:
            self._net.close()
        with contextlib.suppress(docker.errors.DockerException, DeviceError, OSError):
            procfaults.thaw_all(self)


class EmulatedDevice(DeviceBase):
    """An emulated ARM device; use as a context manager, or call ``start()``/``stop()``.

    ``snapshot``: start from that snapshot's card (and stack) instead of a new card; ``template``
    (default): a new card is a clone of the prepared card of this arch and size (harness.snapshots).
    ``build_cache`` (default): deploys reuse and fill the host's build cache (harness.buildcache);
    off for tests that measure builds from nothing. ``engine_tcp``: the engine answers on TCP port
    2375 too, as a board's would (see tests/e2e/test_board.py).
    """

    capabilities = frozenset({EMULATED, POWER, ENGINE_KILL, RUNTIME_KILL, PROCESS_FAULTS, DISK_FILL, NET_FAULTS,
                              CLOCK, STACK_CLOCK, CARD_FAULTS})

    def __init__(self, arch: str | Arch = "arm64", disk: str = "2G", name: str | None = None, *,
                 keep: bool = False, client: docker.DockerClient | None = None,
                 preload: tuple[str, ...] = ("python", "debian"), snapshot: str | None = None,
                 template: bool = True, build_cache: bool = True,
                 card_cache: bool = True, engine_tcp: bool = False):
        arch = get_arch(arch)
        parse_size(disk)  # fail now on a bad size, not inside the engine container
        super().__init__(arch, name or f"armstack-{arch.name}-{uuid.uuid4().hex[:8]}", keep=keep,
                         host=client or docker.from_env())
        self.disk = disk
        self.preload = preload
        self.card_cache = card_cache   # False: the host keeps every write of the card (no lossy power cut)
        # The engine answers on TCP port 2375 too, as a board's would. Without it the harness
        # reaches the engine through its socket where it can (dockerd waits 1 s before it serves
        # plain TCP, at every start), else over TCP all the same.
        self.engine_tcp = engine_tcp
        self._engine_socket: Path | None = None
        self._engine_c: DockerContainer | None = None
        self._engine_client: docker.DockerClient | None = None
        self._engine_ip: str | None = None
        self._shared: Path | None = None
        self.volumes = {v: f"{self.name}-{v}" for v in ("sdcard", "sock", "stack", "data")}
        self.snapshot_name = snapshots.check_name(snapshot) if snapshot is not None else None
        self.template = template
        self.build_cache = build_cache
        self.card_dir: Path | None = None      # the card's directory in the card store, if there is one
        self.reset_point: str | None = None    # the snapshot reset() goes back to
        self.auto_reset_point = False          # take a reset point after the first deploy
        self._own_reset_point: str | None = None   # a reset point this device took: removed with it
        self._store: cardstore.CardStore | None = None
        self._card = Card(self)
        self.last_power_cut: CardState | None = None

    def start(self) -> Self:
        check_emulation(self.arch)
        ready = images.prepare([self.arch], ("engine", "runtime", *self.preload), self.host)
        engine_image = ready["engine", get_arch("amd64").name]
        self.runtime_image = ready["runtime", self.arch.name]
        bases = {kind: ready[kind, self.arch.name] for kind in self.preload}
        restored = self._prepare_card(engine_image, bases)
        for vol in self.volumes.values():
            self.host.volumes.create(vol, labels=labels(self.name))
        run = dict(engine_run_kwargs(self.host, engine_image))
        self._shared = share_card_directory(self.name, self.host)
        self._engine_socket = None if self.engine_tcp else engine_socket_path(
            local_volume_path(self.host, self.volumes["sock"]))
        env_card: dict[str, str] = {}
        card = str(self.card_dir) if self.card_dir is not None else self.volumes["sdcard"]
        mounts = {**run.pop("volumes", {}),
                  card: {"bind": "/sdcard", "mode": "rw"},
                  self.volumes["sock"]: {"bind": "/run/armstack", "mode": "rw"},
                  self.volumes["stack"]: {"bind": "/srv/armstack", "mode": "rw"}}
        if self._shared is not None:
            mounts[str(self._shared)] = {"bind": CARD_DIR, "mode": "rw,rshared"}
            env_card = {"ARMSTACK_CARD_MOUNT": CARD_MOUNT}
        self._engine_c = _with_mounts(
            DockerContainer(engine_image, name=f"{self.name}-engine", docker_client_kw={}, env=env_card)
            .with_env("ARMSTACK_DISK_SIZE", self.disk)
            .with_env("ARMSTACK_CARD_CACHE", "on" if self.card_cache else "off")
            .with_env("ARMSTACK_ENGINE_TCP", "off" if self._engine_socket is not None else "on")
            .with_kwargs(**run, labels=labels(self.name), hostname=self.name,
                         restart_policy={"Name": "unless-stopped"}),
            mounts)
        reaper.start(self._engine_c)
        self._wait_engine()
        for kind, tag in bases.items():
            images.load_into(self.engine, self.host, tag, images.BASES[kind].official)
        if restored is not None and restored.project is not None:
            self._restore_stack(restored)
        return self

    # ---- cards: templates, snapshots, reset (harness.snapshots) ----------------------
    def _prepare_card(self, engine_image: str, bases: dict[str, str]) -> snapshots.SnapshotMeta | None:
        """Give the device a card in the card store, cloned from its snapshot or template."""
        # Cards are host files: only for an engine on this machine (docker-py's unix-socket URL).
        local = str(self.host.api.base_url).startswith("http+docker://")
        store = cardstore.open_store() if local else None
        if store is None:
            if self.snapshot_name is not None:
                raise DeviceError(f"device {self.name}: snapshots need the card store (root, an engine on this "
                                  "machine, ARMSTACK_CARD_STORE not off)")
            return None
        self._store = store
        source = self.snapshot_name
        if source is None and self.template:
            ids = {kind: self.host.images.get(tag).id for kind, tag in bases.items()}
            key = snapshots.template_key(self.arch.name, self.disk, self.host.images.get(engine_image).id, ids)
            source = snapshots.ensure_template(store, self.arch.name, self.disk, self.preload, key)
        self.card_dir = store.device_dir(self.name)
        del self.volumes["sdcard"]
        if source is None:
            return None
        meta = snapshots.restore_card(store, source, self.card_dir)
        if meta.arch != self.arch.name:
            raise DeviceError(f"snapshot {source!r} is a card of an {meta.arch} device, not {self.arch.name}")
        self.disk = meta.disk
        if meta.kind != snapshots.TEMPLATE:
            self.reset_point = source
        return meta

    def _restore_stack(self, meta: snapshots.SnapshotMeta, *, keep_containers: bool = False) -> None:
        """Put back a snapshot's stack files and start the runtime on them (with ``keep_containers``,
        it adopts the stack's containers that are there)."""
        assert meta.source is not None
        self._put_back_stack(meta)
        # The stack's containers go, its volumes stay: the runtime creates them as on a first
        # deploy, so nothing counts as restarted (starting the old ones would count).
        for c in self.engine.containers.list(all=True, filters={"label": f"{STACK_LABEL}={meta.project}"}):
            if keep_containers:
                break
            with contextlib.suppress(docker.errors.NotFound):
                c.remove(force=True)
        self._start_runtime()

    def snapshot(self, name: str) -> snapshots.SnapshotMeta:
        """Freeze the card (and the stack files) as snapshot ``name``; the device keeps running.
        ``EmulatedDevice(snapshot=name)`` and ``device_factory(from_snapshot=name)`` start from it;
        ``reset()`` goes back to it."""
        if self._store is None:
            raise DeviceError(f"device {self.name} has no card in the card store: it cannot be snapshotted")
        meta = snapshots.take(self, self._store, name)
        self.reset_point = name
        return meta

    def reset(self, *, full: bool = False) -> None:
        """Back to the reset point (the snapshot the device started from or last took, or the
        state right after its first deploy when ``auto_reset_point``): volumes and stack files
        restored, faults healed, restart counts at 0.

        By default in place (harness.snapshots.reset_in_place), with the runtime frozen while it
        runs: only services whose volumes changed or that are not running start again, and the
        runtime, still running, forgets its services' history (``_forget_history``). A runtime
        that is not running is started afresh instead. ``full`` (and the fallback when the
        engine does not answer) restores the whole card and boots the device on it."""
        if self._store is None or self.card_dir is None or self.reset_point is None:
            raise DeviceError(f"device {self.name} has no reset point: take one with device.snapshot(name) "
                              "after deploying, or start the device from a snapshot")
        self._heal_faults()
        if not full and self.project is not None:
            try:
                self._reset_in_place()
                return
            except (DeviceError, DeployError, SupervisorError, docker.errors.DockerException, OSError, ValueError):
                pass   # judged or failed in place: the whole card then
        self._drop_runtime()
        engine = self.engine_container()
        if engine.status == "running":
            engine.kill()   # the card is thrown away: nothing on it needs to stop in order
        if self._shared is not None:
            # The engine's card mount outlives it on the host side; the new card needs the path.
            subprocess.run(["umount", "-l", str(self._shared / Path(CARD_MOUNT).name)], capture_output=True)
        meta = snapshots.restore_card(self._store, self.reset_point, self.card_dir)
        self._boot()
        if meta.project is not None:
            self._restore_stack(meta)

    def _reset_in_place(self) -> None:
        assert self._store is not None and self.reset_point is not None
        if not self._runtime_settled():
            self._drop_runtime()
            meta = snapshots.reset_in_place(self, self._store, self.reset_point)
            self._restore_stack(meta, keep_containers=True)
            return
        rt = self.runtime_container()
        self._log_start += len(rt.logs().decode(errors="replace").splitlines()[self._log_start:])
        # Frozen, the runtime cannot start what reset_in_place removes, nor write into a volume
        # being copied back; what it missed it sees in the events waiting when it thaws.
        rt.pause()
        try:
            self._put_back_stack(snapshots.reset_in_place(self, self._store, self.reset_point))
        finally:
            rt.unpause()
        self._forget_history()

    def _put_back_stack(self, meta: snapshots.SnapshotMeta) -> None:
        """The snapshot's stack files back on the device, and its source the deployed one."""
        assert self._store is not None
        data = snapshots.stack_archive(self._store, meta.name)
        if data is not None:
            snapshots.put_stack(self, data)
        self.source = meta.source

    def _runtime_settled(self) -> bool:
        """Whether the runtime container runs a supervisor that wrote its status since the container
        (re)started. One the engine restarts after a kill may still be starting: its status and
        pid file are the dead one's, and a SIGHUP before its handler is set would end it."""
        if self._runtime_c is None:
            return False
        rt = self.runtime_container()
        return rt.status == "running" and supervisor_since_start(self.status(), rt.attrs["State"]["StartedAt"])

    def _drop_runtime(self) -> None:
        """Remove the runtime container and give the next one an empty state directory."""
        if self._runtime_c is not None:
            with contextlib.suppress(docker.errors.NotFound, DeviceError):
                self.runtime_container().remove(force=True, v=True)
            self._runtime_c = None
        self._log_start = 0
        with contextlib.suppress(docker.errors.NotFound):
            self.host.volumes.get(self.volumes["data"]).remove(force=True)
        self.host.volumes.create(self.volumes["data"], labels=labels(self.name))   # runtime state afresh

    def _heal_faults(self) -> None:
        """Lift the faults the harness keeps applying (network, CPU, clock, paused services);
        what a reset copies back or recreates heals the rest."""
        def heal_clock() -> None:
            if procfaults.clock_offset(self):
                self.heal_clock()

        for heal in (self.heal_network, self.heal_cpu, lambda: procfaults.thaw_all(self), heal_clock):
            with contextlib.suppress(docker.errors.DockerException, DeviceError, FaultError, OSError):
                heal()   # one that cannot (the engine down) leaves the others, and the full reset, to go on

    def _image_loader(self, source: StackSource) -> Callable[[], object] | None:
        """Images built before under the same build inputs, loaded from the host's build cache
        (harness.buildcache)."""
        return (lambda: buildcache.preload(self, source)) if self.build_cache else None

    def deploy(self, path_or_source: str | os.PathLike[str] | StackSource, *,
               profiles: Sequence[str] = ()) -> UpdateReport:
        """:meth:`DeviceBase.deploy`, with images built before under the same build inputs loaded
        from the host's build cache before the runtime plans (harness.buildcache; on a first deploy
        while the runtime starts), and what it built added to it."""
        source = stack_source(path_or_source, profiles)
        report = super().deploy(source)
        if self.build_cache:
            buildcache.store(self, source)
        if self.auto_reset_point and self.reset_point is None and self._store is not None:
            snapshots.take(self, self._store, f"reset-{self.name}", snapshots.RESET)
            self.reset_point = self._own_reset_point = f"reset-{self.name}"
        return report

    def stop(self) -> None:
        """Remove the device's containers, and its volumes unless ``keep``."""
        self._close_faults()
        if self.keep and self._engine_c is not None:
            # A kept card keeps what was written to it: removal is no power cut.
            with contextlib.suppress(docker.errors.DockerException, DeviceError):
                self._card.sync()
        for c in (self._runtime_c, self._engine_c):
            if c is not None and c.get_wrapped_container() is not None:
                with contextlib.suppress(docker.errors.NotFound):
                    c.get_wrapped_container().remove(force=True, v=False)
        self._runtime_c = self._engine_c = None
        if self._engine_client is not None:
            self._engine_client.close()
            self._engine_client = None
        if self._shared is not None:
            release_card_directory(self._shared)
            self._shared = None
        if not self.keep:
            for vol in self.volumes.values():
                with contextlib.suppress(docker.errors.NotFound):
                    self.host.volumes.get(vol).remove(force=True)
            if self.card_dir is not None:
                shutil.rmtree(self.card_dir, ignore_errors=True)
                self.card_dir = None
        if self._own_reset_point is not None and self._store is not None:
            self._store.remove_snapshot(self._own_reset_point)
            self._own_reset_point = None

    # ---- engine access ---------------------------------------------------------------
    def engine_container(self) -> Any:
        return _reloaded(self._engine_c, "engine", self.name)

    @property
    def engine(self) -> docker.DockerClient:
        """A docker-py client of the device's own engine (reconnects if the engine moved)."""
        if self._engine_socket is not None:
            # The socket's path stays across restarts of the engine: no address to look up.
            if self._engine_client is None:
                self._engine_client = docker.DockerClient(base_url=f"unix://{self._engine_socket}", timeout=120)
            return self._engine_client
        ip = self.engine_container().attrs["NetworkSettings"]["IPAddress"]
        if self._engine_client is None or ip != self._engine_ip:
            if self._engine_client is not None:
                self._engine_client.close()
            self._engine_client = docker.DockerClient(base_url=f"tcp://{ip}:2375", timeout=120)
            self._engine_ip = ip
        return self._engine_client

    def _wait_engine(self) -> None:
        def ready() -> bool:
            c = self.engine_container()
            if c.status in ("exited", "dead"):
                raise DeviceError(f"the device engine exited:\n{self._tail(c)}")
            return bool(self.engine.ping())

        wait_for(ready, 60, f"the engine of device {self.name} to answer",
                 describe=lambda: self._tail(self.engine_container()))

    def _run_shell(self, cmd: str) -> ExecResult:
        code, out = self.engine_container().exec_run(["sh", "-c", cmd])
        return ExecResult(code, out.decode(errors="replace"))

    def _put_archive(self, dest: str, data: bytes) -> None:
        self.engine_container().put_archive(dest, data)

    def _runtime_mounts(self) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
        """Volumes and environment of the runtime container: the engine's socket, the stack, state."""
        mounts = {self.volumes["sock"]: {"bind": "/run/armstack", "mode": "rw"},
                  self.volumes["stack"]: {"bind": "/srv/armstack", "mode": "rw"},
                  self.volumes["data"]: {"bind": "/data", "mode": "rw"}}
        env = {**self.runtime_env, "DOCKER_HOST": SOCKET, "ARMSTACK_DATA_DIR": DATA_DIR}
        if self._shared is not None:
            mounts[str(self._shared)] = {"bind": CARD_DIR, "mode": "ro,rslave"}
            env["ARMSTACK_ENGINE_ROOT"] = CARD_MOUNT
        return mounts, env

    def url(self, port: int, path: str = "/") -> str:
        """The address, from the host, of a port a stack publishes on the device: ``url(8080, "/health")``."""
        ip = self.engine_container().attrs["NetworkSettings"]["IPAddress"]
        return f"http://{ip}:{port}/{path.lstrip('/')}"

    # ---- faults of the device -------------------------------------------------------
    def _host_kill(self, which: str) -> None:
        c = self.engine_container() if which == "engine" else self.runtime_container()
        pid = _engine_pid(c) if which == "engine" else c.attrs["State"]["Pid"]
        if not pid:
            raise FaultError(f"the {which} of {self.name} is not running")
        os.kill(pid, signals.SIGKILL)   # a crash: the host engine's restart policy brings it back

    def kill_engine(self) -> None:
        """SIGKILL the device's dockerd (and so every stack container); it restarts by itself."""
        self._host_kill("engine")

    def kill_runtime(self) -> None:
        """SIGKILL the runtime; the device restarts it by itself."""
        self._host_kill("runtime")

    def reboot(self) -> None:
        """An orderly reboot: the runtime stops the stack, the engine shuts down, both start again."""
        if self._runtime_c is not None:
            self.runtime_container().stop(timeout=int(self.timeout(20)))
        self.engine_container().stop(timeout=30)
        self._boot()

    def power_cut(self, lose_unsynced: bool = True) -> None:
        """Power lost, then back: the card's write cache is dropped first (every write no flush
        reached the card is lost, as on a board), then everything is SIGKILLed and booted again;
        ext4 replays its journal. ``lose_unsynced=False`` syncs the card first, so it keeps every
        write made before the cut. ``last_power_cut`` is the card's state right after the cut
        (``lost_bytes``), or None where the card has no cache (then nothing is lost)."""
        self.last_power_cut = self._card.cut() if lose_unsynced and self._card.available() else None
        if not lose_unsynced:
            self._card.sync()
        if self._runtime_c is not None:
            self.runtime_container().kill()
        self.engine_container().kill()
        self._boot()

    def _boot(self) -> None:
        self.engine_container().start()
        self._wait_engine()
        if self._runtime_c is not None:
            self.runtime_container().start()

    def sweep(self) -> list[str]:
        return sweep(self.host) + sweep_card_directories()

    # ---- faults of the SD card (harness.card) ------------------------------------------
    def card_state(self) -> CardState:
        """The card's cache and fault counters, and whether ext4 went read-only."""
        return self._card.state()

    def card_latency(self, ms: float) -> None:
        """A slow card: every request to it waits ``ms`` first."""
        self._card.latency(ms)

    def card_bandwidth(self, bytes_per_second: int) -> None:
        """A slow card: its throughput capped (0: no cap)."""
        self._card.bandwidth(bytes_per_second)

    def card_errors(self, kind: ErrorKind = "write", *, after: int | None = None,
                    range: tuple[int, int] | None = None) -> None:
        """A failing card: EIO for ``kind`` requests after ``after`` more good ones, or touching bytes
        ``range=(start, end)`` of the card."""
        self._card.errors(kind, after=after, range=range)

    def card_read_only(self) -> None:
        """The card turns read-only, as worn cards do; ext4 remounts read-only at its next commit."""
        self._card.read_only()

    def heal_card(self) -> CardState:
        """Clear every card fault; if ext4 went read-only the device reboots (fsck at boot)."""
        return self._card.heal(self.reboot)


def supervisor_since_start(status: dict[str, Any] | None, container_started: str) -> bool:
    """Whether a runtime status document was written by a supervisor that started after its
    container did (``container_started``: the engine's ``State.StartedAt``)."""
    supervisor = (status or {}).get("supervisor")
    started_at = supervisor.get("started_at") if isinstance(supervisor, dict) else None
    if isinstance(started_at, bool) or not isinstance(started_at, int | float):
        return False
    since = engine_time(container_started)
    # Whole seconds are enough: a supervisor starts seconds after its container under emulation.
    return since is not None and float(started_at) >= math.floor(since)


def _engine_pid(engine: Any) -> int:
    """The host pid of the device's dockerd: killing it is an engine crash. With the card's cache
    the container's first process is the entrypoint, which then syncs the card before it exits
    (a crashed dockerd is no power cut); without it, dockerd is that first process."""
    top = engine.top(ps_args="-eo pid,args")
    pid_col, cmd_col = top["Titles"].index("PID"), top["Titles"].index("COMMAND")
    pids = [int(p[pid_col]) for p in top["Processes"] if p[cmd_col].split(" ", 1)[0].endswith("dockerd")]
    return pids[0] if pids else int(engine.attrs["State"]["Pid"])


def _reloaded(tc: DockerContainer | None, which: str, device: str) -> Any:
    """The docker-py container behind a testcontainers one, reloaded; DeviceError if there is none."""
    container = None if tc is None else tc.get_wrapped_container()
    if container is None:
        raise DeviceError(f"device {device} has no {which} container (not started, or no stack deployed)")
    container.reload()
    return container


if TYPE_CHECKING:
    _checked: type[Device] = EmulatedDevice   # mypy: an emulated device is a whole Device
