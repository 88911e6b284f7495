"""Fixtures for runtime tests against the native engine: a local base image and supervised stacks.

Every object a test creates carries ``io.armstack.test=1`` (through ``ARMSTACK_EXTRA_LABELS``)
and a unique project name; teardown stops the supervisors the test started (by PID) and removes
the project's containers, networks, volumes and built images, also when the test failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

docker = pytest.importorskip("docker")

BASE_IMAGE = "armstack-test/base:latest"
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("ARMSTACK_CACHE", Path.home() / ".cache" / "armstack"))
TEST_LABEL = "io.armstack.test=1"


def _mirror() -> str:
    for line in Path("/etc/apt/sources.list.d/debian.sources").read_text().splitlines():
        if line.startswith("URIs:"):
            return line.split()[1]
    raise RuntimeError("no URIs: line in /etc/apt/sources.list.d/debian.sources")


def _ensure_base_image(client: Any) -> None:
    try:
        client.images.get(BASE_IMAGE)
        return
    except docker.errors.ImageNotFound:
        pass
    tarball = CACHE / "test-rootfs.tar"
    if not tarball.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        root = CACHE / "test-rootfs"
        subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), _mirror()], check=True,
                       stdout=subprocess.DEVNULL)
        with open(str(tarball) + ".tmp", "wb") as fh:
            subprocess.run(["tar", "-C", str(root), "-c", "."], check=True, stdout=fh)
        os.replace(str(tarball) + ".tmp", tarball)
    ctx = CACHE / "test-base-ctx"
    ctx.mkdir(parents=True, exist_ok=True)
    if not (ctx / "rootfs.tar").exists():
        os.link(tarball, ctx / "rootfs.tar")
    (ctx / "Dockerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["/bin/bash"]\n')
    client.images.build(path=str(ctx), tag=BASE_IMAGE, rm=True)


@pytest.fixture(scope="session")
def engine() -> Iterator[Any]:
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"no Docker engine: {exc}")
    _ensure_base_image(client)
    yield client
    client.close()


# A service that exits at once on SIGTERM, so stops never wait out a grace period.
LOOP = "trap 'exit 0' TERM; echo {name} up; while true; do sleep 0.2; done"


def write_stack(directory: Path, project: str, *, web_message: str = "web up", extra: str = "") -> Path:
    """The test stack: db (built, healthcheck) <- api (service_healthy) <- web."""
    (directory / "db").mkdir(parents=True, exist_ok=True)
    (directory / "db" / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_IMAGE}
        RUN echo built > /built
        CMD ["sh", "-c", "trap 'exit 0' TERM; echo db starting; touch /tmp/ready; while true; do sleep 0.2; done"]
        """))
    web_cmd = LOOP.replace("echo {name} up", f"echo {web_message}")
    text = textwrap.dedent(f"""\
        name: {project}
        services:
          db:
            build: ./db
            restart: always
            stop_grace_period: 2s
            healthcheck:
              test: ["CMD-SHELL", "test -f /tmp/ready"]
              interval: 1s
              timeout: 2s
              retries: 30
          api:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='api')}"]
            restart: always
            stop_grace_period: 2s
            depends_on:
              db:
                condition: service_healthy
          web:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{web_cmd}"]
            restart: always
            stop_grace_period: 2s
            depends_on: [api]
        """) + extra
    path = directory / "compose.yaml"
    path.write_text(text)
    return path


@dataclass
class Stack:
    """One test's project: its directory, data dir, environment and the supervisors it started."""

    client: Any
    project: str
    dir: Path
    data_dir: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def status_path(self) -> Path:
        return self.data_dir / self.project / "status.json"

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "runtime", "-f", str(self.dir), "--data-dir", str(self.data_dir),
               "--no-color", *args]
        return subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)

    def start_supervisor(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.dir / f"supervisor-{len(self.procs)}.log"
        cmd = [sys.executable, "-m", "runtime", "-f", str(self.dir), "--data-dir", str(self.data_dir),
               "--no-color", "up", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.logs.append(log)
        return proc

    def status(self) -> dict[str, Any]:
        try:
            return json.loads(self.status_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 20.0, every: float = 0.05) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}; status: {self.status()}\n"
                             f"log:\n{self.log_text()[-3000:]}")

    def wait_applied(self, generation: int | None = None, timeout: float = 30.0) -> dict[str, Any]:
        def done() -> Any:
            last = self.status().get("last_apply") or {}
            if generation is not None and (last.get("generation") or 0) < generation:
                return None
            return last if last.get("ok") is not None else None

        return self.wait("the apply to finish", done, timeout)

    def containers(self) -> dict[str, Any]:
        """service -> container attrs (inspect), for the stack's containers."""
        out = {}
        for c in self.client.containers.list(all=True, filters={"label": f"io.armstack.stack={self.project}"}):
            out[c.labels["io.armstack.service"]] = c.attrs
        return out

    def log_text(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def stop_supervisor(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc.send_signal(sig)
        return proc.wait(timeout=timeout)


def _cleanup(client: Any, project: str) -> None:
    flt = {"label": [f"io.armstack.stack={project}", TEST_LABEL]}
    for c in client.containers.list(all=True, filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            c.remove(force=True)
    for n in client.networks.list(filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            n.remove()
    for v in client.volumes.list(filters=flt):
        with contextlib.suppress(docker.errors.APIError):
            v.remove(force=True)
    for img in client.images.list(filters={"label": [f"io.armstack.image.stack={project}", TEST_LABEL]}):
        with contextlib.suppress(docker.errors.APIError):
            client.images.remove(img.id, force=True)


@pytest.fixture
def stack(engine: Any, tmp_path: Path) -> Iterator[Stack]:
    project = f"t{uuid.uuid4().hex[:10]}"
    env = dict(os.environ)
    env["ARMSTACK_EXTRA_LABELS"] = TEST_LABEL
    env["PYTHONPATH"] = str(ROOT)
    env.pop("NO_COLOR", None)
    # Probation off unless a test asks for it (``--probation``): an update would otherwise wait
    # out the 60 s default before its apply answers (tests/integration/test_rollback.py tests it).
    env["ARMSTACK_PROBATION"] = "0"
    s = Stack(engine, project, tmp_path / "stack", tmp_path / "data", env)
    s.dir.mkdir()
    try:
        yield s
    finally:
        for proc in s.procs:
            if proc.poll() is None:
                proc.kill()   # by PID: only what this test started
                proc.wait(timeout=10)
        _cleanup(engine, project)
