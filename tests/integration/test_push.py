"""``armstack push`` against real targets: a directory with a running supervisor, and sshd.

- ``--to DIR``: the release is shipped next to a supervisor that runs from that directory; a
  one-line change is handed to it (the same hand-off as ``armstack apply``) and its apply report
  streams back; only the changed service is recreated.
- ``ssh://``: an OpenSSH server in a container built here from the harness's Debian stand-in (no
  registry), reached with a key made for the test; the release lands under the login's path, a
  one-line change sends one file, and the apply command's output comes back over the connection.
  The image and container carry the test label and are removed afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.session import labels as harness_labels
from tests.integration.conftest import ROOT, TEST_LABEL, Stack, write_stack

docker = pytest.importorskip("docker")


def test_push_to_a_directory_hands_the_release_to_its_supervisor(stack: Stack, tmp_path: Path) -> None:
    write_stack(stack.dir, stack.project, web_message="web v1")
    board = tmp_path / "board" / "stack"
    board.parent.mkdir()
    shipped = stack.cli("push", "--to", str(board), "--no-apply")
    assert shipped.returncode == 0, shipped.stderr
    assert board.is_symlink() and (board / "compose.yaml").is_file()

    # The board's supervisor runs from the stack directory push maintains.
    log = tmp_path / "supervisor.log"
    with open(log, "wb") as out:
        stack.procs.append(subprocess.Popen(
            [sys.executable, "-m", "runtime", "-f", str(board), "--data-dir", str(stack.data_dir), "--no-color", "up"],
            cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT))
    stack.logs.append(log)
    stack.wait_applied(1, timeout=120)
    before = stack.containers()

    write_stack(stack.dir, stack.project, web_message="web v2")   # one line of the compose file changes
    res = stack.cli("push", "--to", str(board), timeout=180)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "1 changed" in res.stderr and "a supervisor (pid" in res.stderr, res.stderr
    assert "generation 2 applied" in res.stdout, res.stdout
    after = stack.containers()
    assert "web v2" in " ".join(after["web"]["Config"]["Cmd"])
    assert after["db"]["Id"] == before["db"]["Id"] and after["api"]["Id"] == before["api"]["Id"]
    assert after["web"]["Id"] != before["web"]["Id"]
    status = stack.status()
    assert status["last_apply"]["ok"] and status["last_apply"]["generation"] == 2
    assert status["project"] == stack.project   # named from the stack directory, not the release behind it


# -- over ssh ---------------------------------------------------------------------------------

SSHD_IMAGE = f"armstack-test/sshd:{uuid.uuid4().hex[:8]}"
LABELS = {**harness_labels(), TEST_LABEL.split("=")[0]: "1"}   # swept by the harness if this run dies


def _wait_for_sshd(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1) as s:
            if s.recv(4).startswith(b"SSH-"):
                return
        time.sleep(0.2)   # the server's banner is the only sign it is ready
    raise AssertionError(f"sshd did not answer on {host}:{port} within {timeout}s")


@pytest.fixture
def sshd(engine: Any, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """(ssh://root@127.0.0.1:PORT, the ssh command with the test's key) of a fresh sshd container."""
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("no ssh client on this machine (apt-get install openssh-client)")
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    ctx = tmp_path / "sshd"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM {images.build_base('python', 'amd64', engine)}\n"
        "RUN apt-get update && apt-get install -y --no-install-recommends openssh-server "
        "&& rm -rf /var/lib/apt/lists/* && mkdir -p /run/sshd /root/.ssh && chmod 700 /root/.ssh\n"
        'CMD ["/usr/sbin/sshd", "-D", "-e"]\n')
    container = None
    try:
        engine.images.build(path=str(ctx), tag=SSHD_IMAGE, labels=LABELS, rm=True, forcerm=True)
        container = engine.containers.create(SSHD_IMAGE, labels=LABELS, ports={"22/tcp": ("127.0.0.1", None)})
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            data = (tmp_path / "key.pub").read_bytes()
            info = tarfile.TarInfo("authorized_keys")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
        container.put_archive("/root/.ssh", buf.getvalue())
        container.start()
        container.reload()
        port = int(container.attrs["NetworkSettings"]["Ports"]["22/tcp"][0]["HostPort"])
        _wait_for_sshd("127.0.0.1", port, 30)
        ssh = ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
               "-o", "LogLevel=ERROR"]
        yield f"ssh://root@127.0.0.1:{port}", ssh
    finally:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True, v=True)
        with contextlib.suppress(docker.errors.APIError):
            engine.images.remove(SSHD_IMAGE, force=True)


def _push(src: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "runtime", "-f", str(src), "push", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_push_over_ssh_sends_only_the_change(sshd: tuple[str, list[str]], tmp_path: Path) -> None:
    url, ssh = sshd
    src = tmp_path / "src"
    (src / "app").mkdir(parents=True)
    (src / "compose.yaml").write_text("name: board\nservices:\n  app:\n    build: ./app\n")
    (src / "app" / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    (src / "app" / "blob.bin").write_bytes(os.urandom(2_000_000))
    show = 'echo "in $PWD at $ARMSTACK_STACK_DIR"; cat compose.yaml'

    first = _push(src, f"{url}/srv/stack", "--ssh", " ".join(ssh), "--apply-command", show)
    assert first.returncode == 0, first.stderr
    assert "3 changed" in first.stderr
    assert "at /srv/stack" in first.stdout and "build: ./app" in first.stdout

    (src / "compose.yaml").write_text("name: board\nservices:\n  app:\n    build: ./app\n    restart: always\n")
    second = _push(src, f"{url}/srv/stack", "--ssh", " ".join(ssh), "--apply-command", show)
    assert second.returncode == 0, second.stderr
    assert "1 changed" in second.stderr and "2 unchanged" in second.stderr, second.stderr
    sent = int(second.stderr.split("sent ")[1].split(" bytes")[0])
    assert sent < 10_000, second.stderr
    assert "restart: always" in second.stdout

    # The board has the release, the previous one, and a symlink naming the current.
    look = "readlink /srv/stack; ls /srv/stack.armstack/releases | wc -l; wc -c < /srv/stack/app/blob.bin"
    ls = subprocess.run([*ssh, "-p", url.rsplit(":", 1)[1], "root@127.0.0.1", look],
                        capture_output=True, text=True, timeout=60)
    lines = ls.stdout.split()
    assert lines[0].startswith("stack.armstack/releases/") and lines[1] == "4" and lines[2] == "2000000", ls
