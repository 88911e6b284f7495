"""LogFollower against the real engine: stdout/stderr apart, every line exactly once across restarts."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from collections.abc import Iterator

import docker
import docker.errors
import pytest

from runtime.logfollow import LogFollower
from runtime.logs import LogPresenter
from tests.integration.hostroot import copy_binaries

TEST_LABEL = {"io.armstack.test": "1"}
IMAGE = "armstack/test-sh:logfollow"


class Capture(io.StringIO):
    """A presenter output that lets a test wait for lines instead of sleeping."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()

    def write(self, s: str) -> int:
        with self._cond:
            n = super().write(s)
            self._cond.notify_all()
            return n

    def lines(self) -> list[str]:
        with self._cond:
            return self.getvalue().splitlines()

    def wait_lines(self, count: int, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.getvalue().splitlines()) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"waited {timeout}s for {count} lines, got:\n{self.getvalue()}")
                self._cond.wait(left)
            return self.getvalue().splitlines()


@pytest.fixture(scope="session")
def client() -> Iterator[docker.DockerClient]:
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine: {exc}")
    yield c
    c.close()


@pytest.fixture(scope="session")
def sh_image(client: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny image holding only the host's /bin/sh and its libraries (there is no registry)."""
    try:
        client.images.get(IMAGE)
        return IMAGE
    except docker.errors.ImageNotFound:
        pass
    ctx = tmp_path_factory.mktemp("sh-image")
    copy_binaries(ctx / "rootfs", {"bin/sh": shutil.which("dash") or "/bin/sh"})
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY rootfs/ /\nLABEL io.armstack.test="1"\n')
    client.images.build(path=str(ctx), tag=IMAGE, rm=True, forcerm=True)
    return IMAGE


@pytest.fixture
def make_container(client: docker.DockerClient, sh_image: str) -> Iterator:
    created: list[str] = []

    def make(script: str, **kwargs: object) -> docker.models.containers.Container:
        c = client.containers.create(sh_image, ["/bin/sh", "-c", script], labels=TEST_LABEL, **kwargs)
        created.append(c.id)
        return c

    yield make
    for cid in created:
        try:
            c = client.containers.get(cid)
        except docker.errors.NotFound:
            continue
        if c.labels.get("io.armstack.test") == "1":   # never remove anything we did not create
            c.remove(force=True)


# Prints 3 numbered lines to stdout and 3 to stderr per run, numbering continued across restarts.
COUNTER = (
    'n=0; [ -f /count ] && read n < /count; i=0; '
    'while [ $i -lt 3 ]; do i=$((i+1)); n=$((n+1)); echo "out $n"; echo "err $n" >&2; echo $n > /count; done'
)


def _parse(lines: list[str]) -> list[tuple[str, str]]:
    return [(o["stream"], o["line"]) for o in map(json.loads, lines) if o["service"] == "counter"]


def _wait_followers_done(follower: LogFollower, timeout: float = 10.0) -> None:
    assert follower.wait(timeout=timeout), "follower threads did not end after the container stopped"


def test_each_line_exactly_once_across_restarts(client: docker.DockerClient, make_container) -> None:
    out = Capture()
    presenter = LogPresenter(out, fmt="json")
    follower = LogFollower(client, presenter)
    container = make_container(COUNTER)
    try:
        for run in range(3):   # the first start and two restarts
            container.start()
            follower.follow("counter", container.id)
            follower.follow("counter", container.id)   # idempotent: no second thread, no duplicates
            assert container.wait(timeout=20)["StatusCode"] == 0
            out.wait_lines(6 * (run + 1))
            _wait_followers_done(follower)
        got = _parse(out.lines())
        stdout = [text for stream, text in got if stream == "stdout"]
        stderr = [text for stream, text in got if stream == "stderr"]
        assert stdout == [f"out {i}" for i in range(1, 10)]
        assert stderr == [f"err {i}" for i in range(1, 10)]
        assert len(got) == 18
    finally:
        follower.stop_all()


def test_follow_after_restart_while_old_thread_drains(client: docker.DockerClient, make_container) -> None:
    """The supervisor restarts at once and calls follow again; the old thread may still be alive."""
    out = Capture()
    follower = LogFollower(client, LogPresenter(out, fmt="json"))
    container = make_container(COUNTER)
    try:
        container.start()
        follower.follow("counter", container.id)
        container.wait(timeout=20)
        container.start()
        follower.follow("counter", container.id)
        container.wait(timeout=20)
        out.wait_lines(12)
        _wait_followers_done(follower)
        got = _parse(out.lines())
        assert sorted(got) == sorted(
            [("stdout", f"out {i}") for i in range(1, 7)] + [("stderr", f"err {i}") for i in range(1, 7)]
        )
    finally:
        follower.stop_all()


def test_text_mode_prefix_and_new_container_for_same_service(
    client: docker.DockerClient, make_container
) -> None:
    out = Capture()
    presenter = LogPresenter(out, color=False)
    presenter.add_names(["web"])
    follower = LogFollower(client, presenter)
    try:
        first = make_container('echo "old container"; printf "no newline at end"')
        first.start()
        follower.follow("web", first.id)
        first.wait(timeout=20)
        _wait_followers_done(follower)
        out.wait_lines(2)
        second = make_container('echo "new container"')
        second.start()
        follower.follow("web", second.id)
        second.wait(timeout=20)
        _wait_followers_done(follower)
        out.wait_lines(3)
        assert out.lines() == [
            "web      | old container",
            "web      | no newline at end",
            "web      | new container",
        ]
    finally:
        follower.stop_all()


def test_tty_container_is_all_stdout(client: docker.DockerClient, make_container) -> None:
    out = Capture()
    follower = LogFollower(client, LogPresenter(out, fmt="json"))
    container = make_container('echo "to out"; echo "to err" >&2', tty=True)
    try:
        container.start()
        follower.follow("counter", container.id)
        container.wait(timeout=20)
        out.wait_lines(2)
        _wait_followers_done(follower)
        assert _parse(out.lines()) == [("stdout", "to out"), ("stdout", "to err")]
    finally:
        follower.stop_all()


def test_stop_ends_a_silent_follow_promptly(client: docker.DockerClient, make_container) -> None:
    out = Capture()
    follower = LogFollower(client, LogPresenter(out))
    # `read` blocks on the open stdin forever without using CPU: a running, silent service.
    container = make_container('echo "up"; read x', stdin_open=True)
    container.start()
    follower.follow("idle", container.id)
    out.wait_lines(1)
    assert follower.following("idle") == [container.id]
    started = time.monotonic()
    follower.stop("idle")
    assert time.monotonic() - started < 10.0   # stopping does not wait for output that never comes
    assert follower.following() == []
    container.reload()
    assert container.status == "running"   # stopping the follower leaves the service alone


def test_removed_container_ends_quietly(client: docker.DockerClient, make_container) -> None:
    out = Capture()
    follower = LogFollower(client, LogPresenter(out))
    container = make_container("echo hi", stdin_open=True)
    container.remove()
    follower.follow("gone", container.id)
    _wait_followers_done(follower)
    assert out.lines() == []
