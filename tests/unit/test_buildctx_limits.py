"""Build contexts that `validate` accepts but a build cannot take as they are.

Sockets, a ``.dockerignore`` Docker refuses, deep trees, a Dockerfile that is a pipe or a
device, and contexts bigger than memory: each must end in a clear error that names the service
(a failed build) or be handled as ``docker build`` does, never in a crash or a hang.
(``.dockerignore`` reading and matching: test_dockerignore.py.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime.actions import Build
from runtime.buildctx import (
    MAX_DOCKERFILE_BYTES,
    build_context_hash,
    context_files,
    read_dockerfile,
)
from runtime.compose.model import BuildSpec
from runtime.desired import make_desired
from runtime.errors import ArmstackError, BuildContextError, EngineError
from runtime.executor import Executor
from tests.unit.specs import desired, stack, svc


def make(root: Path, files: dict[str, str | bytes]) -> BuildSpec:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return BuildSpec(context=str(root))


BASIC: dict[str, str | bytes] = {"Dockerfile": "FROM alpine:3.19\nCOPY . /app\n", "app.py": "print(1)\n"}


class Overrun(Exception):
    """Not an OSError (as TimeoutError is): code that catches OSError must not swallow it."""


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: Any) -> None:
        raise Overrun(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- finding 4: entries and files that validate accepts -----------------------------------------


def test_a_socket_in_the_context_is_skipped_as_docker_does(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "app.sock"))
        assert "app.sock" not in context_files(build)
        build_context_hash(build)
    finally:
        server.close()


def test_a_bad_dockerignore_pattern_is_a_build_error_naming_file_and_pattern(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": "*.log\n[z-a]\n"})
    with pytest.raises(BuildContextError) as err:
        context_files(build, service="web")
    assert isinstance(err.value, EngineError) and err.value.service == "web"
    text = str(err.value)
    assert ".dockerignore" in text and "[z-a]" in text and "line 2" in text and "'web'" in text
    with pytest.raises(BuildContextError):
        build_context_hash(build)


@pytest.fixture
def deep_dir(tmp_path: Path) -> Iterator[Path]:
    """1,100 nested directories below ``tmp_path``, removed afterwards one by one: shutil.rmtree,
    which pytest uses on old temporary directories, recurses and cannot remove them."""
    deep = tmp_path
    try:
        for _ in range(1100):
            deep = deep / "d"
            deep.mkdir()  # one by one: os.makedirs recurses too
        yield deep
    finally:
        while deep != tmp_path:
            for child in deep.iterdir():
                child.unlink()
            deep.rmdir()
            deep = deep.parent


def test_a_context_1100_directories_deep(tmp_path: Path, deep_dir: Path) -> None:
    build = make(tmp_path, BASIC)
    (deep_dir / "leaf.txt").write_text("x")
    files = context_files(build)
    assert files[-1] == "d/" * 1100 + "leaf.txt"
    build_context_hash(build)


# -- finding 11: pipes, devices, memory ------------------------------------------


def test_a_dockerfile_that_is_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    build = make(tmp_path, {"app.py": "1"})
    os.mkfifo(tmp_path / "Dockerfile")
    with deadline(5):
        with pytest.raises(BuildContextError, match="not a regular file") as err:
            read_dockerfile(build, service="web")
        assert err.value.service == "web"
        with pytest.raises(BuildContextError):
            build_context_hash(build)
        with pytest.raises(BuildContextError):
            read_dockerfile(build)


def test_a_dockerfile_that_is_dev_zero_is_refused(tmp_path: Path) -> None:
    build = make(tmp_path, {"app.py": "1"})
    (tmp_path / "Dockerfile").symlink_to("/dev/zero")
    with deadline(5), pytest.raises(BuildContextError, match="not a regular file"):
        build_context_hash(build)


def test_a_dockerfile_over_the_size_cap_is_refused(tmp_path: Path) -> None:
    build = make(tmp_path, {"app.py": "1"})
    with open(tmp_path / "Dockerfile", "wb") as f:
        f.truncate(MAX_DOCKERFILE_BYTES + 1)  # sparse: no disk used
    with deadline(5), pytest.raises(BuildContextError, match="too large"):
        build_context_hash(build)


def test_a_dockerignore_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    os.mkfifo(tmp_path / ".dockerignore")
    with deadline(5), pytest.raises(BuildContextError, match=".dockerignore"):
        context_files(build)


# -- the error tree: a failed build of one service, not a crash ----------------------------------


class FakeAPI:
    """Reads the build context the way docker-py hands it to the engine, then builds."""

    def __init__(self) -> None:
        self.sent = 0
        self.largest = 0

    def build(self, *, fileobj: Any, **kw: Any) -> Iterator[dict[str, Any]]:
        chunks = iter(lambda: fileobj.read(1 << 16), b"") if hasattr(fileobj, "read") else fileobj
        for chunk in chunks:
            self.sent += len(chunk)
            self.largest = max(self.largest, len(chunk))
        yield {"aux": {"ID": "sha256:built"}}

    def tag(self, *a: Any, **kw: Any) -> None:
        return None


def executor_for(tmp_path: Path) -> tuple[Executor, FakeAPI]:
    spec = dataclasses.replace(svc("web", build=True), build=BuildSpec(context=str(tmp_path)))
    api = FakeAPI()
    return Executor(SimpleNamespace(api=api), desired(stack(spec))), api  # type: ignore[arg-type,unused-ignore]


def test_a_bad_context_fails_the_build_of_its_service(tmp_path: Path) -> None:
    make(tmp_path, {**BASIC, ".dockerignore": "[z-a]\n"})
    ex, _ = executor_for(tmp_path)
    [result] = ex.execute([Build("web", "demo-web", "h")])
    assert not result.ok and result.service == "web"
    assert result.error is not None and "[z-a]" in result.error


def test_desired_state_leaves_a_bad_context_to_the_build(tmp_path: Path) -> None:
    make(tmp_path, {"app.py": "1"})
    os.mkfifo(tmp_path / "Dockerfile")
    spec = dataclasses.replace(svc("web", build=True), build=BuildSpec(context=str(tmp_path)))
    client = SimpleNamespace(api=SimpleNamespace(images=lambda: []))
    with deadline(5):
        d = make_desired(client, stack(spec))  # type: ignore[arg-type,unused-ignore]
    assert d.build_hashes == ()


def test_build_context_errors_belong_to_the_runtime_tree() -> None:
    err = BuildContextError("The build context is bad.", service="web")
    assert isinstance(err, ArmstackError) and isinstance(err, EngineError)
    # Callers that treat an unreadable context as "unknown" (no hash, no size estimate) and let
    # the build report it catch OSError; a context error must take that path too.
    assert isinstance(err, OSError)
    assert err.service == "web" and str(err) == "The build context is bad."
