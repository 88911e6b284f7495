"""The all-in-one device image (``--target all-in-one``) booted natively, as a board runs it.

One container holds dockerd and the runtime; a named volume is its ``/data`` (the engine's data
under ``/data/docker``, the supervisor's state, the stack in ``/data/stack``). It runs with the
capability recipe the harness uses for device engines (privileged where the host allows it).
Proven in one boot sequence: dockerd starts and the stack in ``/data`` is applied; a SIGKILL of a
stack container's process is restarted; after a restart of the outer container the built image
(same id, no rebuild) and the volume data are still there; and the boot cleanup removed the
stack's own stray container but left a container and a volume armstack does not own. The stack
reaches ``/data`` with ``armstack push --to`` the volume's directory, and a second release is
pushed and handed to the supervisor inside with ``docker exec`` (the README's recipe).

The stack's image is built inside the device from a context holding only the host's ``sh``,
``sleep`` and their libraries (no registry, nothing to load into the inner engine).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.capabilities import engine_run_kwargs
from harness.session import labels as harness_labels
from tests.integration.conftest import ROOT, TEST_LABEL
from tests.integration.hostroot import copy_binaries

docker = pytest.importorskip("docker")

PROJECT = "aio"
STACK = "/data/stack"
LABELS = {**harness_labels(), TEST_LABEL.split("=")[0]: "1"}
# Every start adds one to the count on the named volume, so its value says how many starts it has seen.
SERVICE_CMD = ("trap 'exit 0' TERM; n=0; [ -f /counts/n ] && read n < /counts/n; n=$$((n+1)); "
               "echo $$n > /counts/n; echo start $$n; while :; do sleep 0.2; done")


def write_stack(root: Path, environment: str = "") -> None:
    """The compose file and a build context of sh + sleep (+ their libraries) under ``root``;
    ``environment``: the service's ``KEY=value`` list."""
    copy_binaries(root / "counter" / "rootfs", {"bin/sh": shutil.which("dash") or "/bin/sh",
                                                "bin/sleep": shutil.which("sleep") or "/bin/sleep"})
    (root / "counter" / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nCMD ["/bin/sh"]\n')
    (root / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {PROJECT}
        services:
          counter:
            build: ./counter
            command: ["/bin/sh", "-c", "{SERVICE_CMD}"]
            stop_grace_period: 2s
            volumes: [counts:/counts]
            environment: [{environment}]
        volumes:
          counts: {{}}
        """))


class Board:
    """The all-in-one container, commands run inside it, and pushes to its /data from the host."""

    def __init__(self, container: Any, src: Path, data: Path) -> None:
        self.container, self.src, self.data = container, src, data

    def push(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``armstack push --to`` the volume's directory on the host (a card in a reader, as it were)."""
        return subprocess.run([sys.executable, "-m", "runtime", "-f", str(self.src), "push", "--to",
                               str(self.data / "stack"), *args], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              capture_output=True, text=True, timeout=120)

    def sh(self, script: str) -> str:
        code, out = self.container.exec_run(["sh", "-c", script])
        text = out.decode(errors="replace")
        assert code == 0, f"{script!r} exited {code}: {text}"
        return text.strip()

    def status(self) -> dict[str, Any]:
        code, out = self.container.exec_run(["armstack", "-f", STACK, "status", "--json"], stderr=False)
        try:
            return json.loads(out.decode())
        except ValueError:
            return {}

    def count(self) -> int:
        return int(self.sh(f"cat /data/docker/volumes/{PROJECT}_counts/_data/n"))

    def wait(self, what: str, predicate: Callable[[], Any], timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.container.reload()
            if self.container.status != "running":
                break
            with contextlib.suppress(AssertionError, ValueError):
                value = predicate()
                if value:
                    return value
            time.sleep(0.5)   # polling the board's status: there is no event to wait on from out here
        logs = self.container.logs(tail=60).decode(errors="replace")
        raise AssertionError(f"timed out waiting for {what} (container {self.container.status}); "
                             f"status: {self.status()}\nboard log:\n{logs}")

    def running(self, restarts: int | None = None) -> dict[str, Any] | None:
        svc = (self.status().get("services") or {}).get("counter") or {}
        if svc.get("state") != "running":
            return None
        return svc if restarts is None or (svc.get("restarts") or 0) >= restarts else None


@pytest.fixture(scope="module")
def all_in_one_image(engine: Any) -> str:
    return images.build_all_in_one(engine)


@pytest.fixture
def board(engine: Any, all_in_one_image: str, tmp_path: Path) -> Iterator[Board]:
    name = f"armstack-aio-{uuid.uuid4().hex[:8]}"
    volume = engine.volumes.create(name, labels=LABELS)
    data = Path(volume.attrs["Mountpoint"])
    kwargs = dict(engine_run_kwargs(engine, all_in_one_image))
    kwargs["volumes"] = {**kwargs.get("volumes", {}), volume.name: {"bind": "/data", "mode": "rw"}}
    container = None
    try:
        container = engine.containers.create(all_in_one_image, name=name, labels=LABELS, detach=True, **kwargs)
        if not data.is_dir():
            pytest.skip(f"the engine's volume directory {data} is not on this machine")
        b = Board(container, tmp_path / "src", data)
        write_stack(b.src)
        shipped = b.push("--no-apply")   # the stack arrives in /data as a release from armstack push
        assert shipped.returncode == 0, shipped.stderr
        container.start()
        yield b
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.APIError):
            volume.remove(force=True)


def test_all_in_one_boots_supervises_and_survives_a_restart(board: Board) -> None:
    # dockerd starts, the stack in /data is built and applied.
    first = board.wait("the stack to run", board.running)
    assert "dockerd is up" in board.container.logs().decode()
    assert board.count() == 1
    inner = board.sh("docker ps -q --filter label=io.armstack.service=counter --no-trunc")
    image_id = board.sh(f"docker inspect -f '{{{{.Image}}}}' {inner}")
    assert board.sh("docker info -f '{{.DockerRootDir}}'") == "/var/lib/docker"
    # /data/docker is what is mounted there: the same directory (device and inode).
    assert board.sh("stat -c %d:%i /var/lib/docker") == board.sh("stat -c %d:%i /data/docker")

    # A real crash: SIGKILL of the service's main process (the engine sees it die, not a stop).
    board.sh(f"kill -9 $(docker inspect -f '{{{{.State.Pid}}}}' {inner})")
    board.wait("the crashed service to be restarted", lambda: board.running(restarts=(first["restarts"] or 0) + 1))
    board.wait("the restarted service to count its start", lambda: board.count() == 2)

    # What armstack does not own, and a stray container of its own stack (a service not in the file).
    built = board.sh(f"docker inspect -f '{{{{.Config.Image}}}}' {inner}")
    board.sh(f"docker create --name foreign --label keep=yes {built} /bin/sh && docker volume create foreign-data")
    board.sh(f"docker create --name stray --label io.armstack.stack={PROJECT} "
             f"--label io.armstack.service=gone {built} /bin/sh")

    board.container.restart(timeout=60)   # the board reboots: SIGTERM, the supervisor and dockerd stop in order

    board.wait("the stack to run after the restart", lambda: board.running() and board.count() == 3)
    after = board.sh("docker ps -q --filter label=io.armstack.service=counter --no-trunc")
    assert board.sh(f"docker inspect -f '{{{{.Image}}}}' {after}") == image_id   # the built image survived
    names = board.sh("docker ps -a --format '{{.Names}}'").split()
    assert "foreign" in names, names
    assert "stray" not in names, names
    assert "foreign-data" in board.sh("docker volume ls -q").split()
    log = board.container.logs().decode(errors="replace")
    assert log.count("dockerd is up") == 2, log
    assert "stopping dockerd" in log, log

    # A new release pushed to /data and handed to the supervisor inside (the README's recipe).
    write_stack(board.src, environment="RELEASE=2")
    res = board.push("--apply-command", f"docker exec {board.container.name} armstack -f {STACK} apply")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 changed" in res.stderr and "applied" in res.stdout, res.stdout + res.stderr
    now = board.sh("docker ps -q --filter label=io.armstack.service=counter --no-trunc")
    assert "RELEASE=2" in board.sh(f"docker inspect -f '{{{{.Config.Env}}}}' {now}")
