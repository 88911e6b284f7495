"""Build contexts that `validate` accepts but a build cannot take as they are.

Sockets, a ``.dockerignore`` Docker refuses, deep trees, a Dockerfile that is a pipe or a
device, and contexts bigger than memory: each must end in a clear error that names the service
(a failed build) or be handled as ``docker build`` does, never in a crash or a hang.
(``.dockerignore`` reading and matching: test_dockerignore.py.)
"""

from __future__ import annotations

import dataclasses
import io
import os
import socket
import tarfile
import tracemalloc
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from runtime.actions import Build
from runtime.buildctx import (
    MAX_DOCKERFILE_BYTES,
    build_context_hash,
    context_files,
    context_tar,
    read_dockerfile,
)
from runtime.compose.model import BuildSpec
from runtime.desired import make_desired
from runtime.errors import ArmstackError, BuildContextError, EngineError
from runtime.executor import Executor
from tests.unit.contexts import BASIC, make
from tests.unit.deadline import deadline
from tests.unit.specs import desired, stack, svc


def tar_names(chunks: Iterable[bytes]) -> dict[str, tarfile.TarInfo]:
    data = b"".join(chunks)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        return {m.name: m for m in tar.getmembers()}


# -- finding 4: entries and files that validate accepts -----------------------------------------


def test_a_socket_in_the_context_is_skipped_as_docker_does(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(tmp_path / "app.sock"))
        assert "app.sock" not in context_files(build)
        build_context_hash(build)
        assert set(tar_names(context_tar(build, service="web"))) == {"Dockerfile", "app.py"}
    finally:
        server.close()


def test_a_fifo_in_the_context_is_sent_as_an_entry_and_never_read(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    os.mkfifo(tmp_path / "pipe")
    with deadline(5):
        build_context_hash(build)
        members = tar_names(context_tar(build, service="web"))
    assert members["pipe"].isfifo()


def test_a_bad_dockerignore_pattern_is_a_build_error_naming_file_and_pattern(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": "*.log\n[z-a]\n"})
    with pytest.raises(BuildContextError) as err:
        context_tar(build, service="web")
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
    assert "d/" * 1100 + "leaf.txt" in tar_names(context_tar(build, service="web"))


def test_a_dockerignore_with_a_utf8_bom_keeps_the_file_it_names_out_of_the_tar(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": b"\xef\xbb\xbfdeploy.key\n", "deploy.key": "KEY"})
    assert "deploy.key" not in tar_names(context_tar(build, service="web"))


# -- finding 11: pipes, devices, memory ------------------------------------------


def test_a_dockerfile_that_is_a_fifo_is_refused_not_waited_for(tmp_path: Path) -> None:
    build = make(tmp_path, {"app.py": "1"})
    os.mkfifo(tmp_path / "Dockerfile")
    with deadline(5):
        with pytest.raises(BuildContextError, match="not a regular file") as err:
            context_tar(build, service="web")
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
        context_tar(build, service="web")


def test_a_dangling_dockerignore_symlink_is_no_dockerignore(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    (tmp_path / ".dockerignore").symlink_to("missing")  # Docker: not there, so nothing ignored
    assert "app.py" in context_files(build)


def test_a_dockerignore_that_is_a_fifo_is_refused(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    os.mkfifo(tmp_path / ".dockerignore")
    with deadline(5), pytest.raises(BuildContextError, match=".dockerignore"):
        context_files(build)


def test_the_context_streams_in_bounded_memory(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    size = 64 << 20
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(size)  # sparse: 64 MiB to read, no disk used
    tracemalloc.start()
    try:
        sent = largest = 0
        for chunk in context_tar(build, service="web"):
            sent += len(chunk)
            largest = max(largest, len(chunk))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sent > size
    assert largest <= 1 << 20
    assert peak < 8 << 20
    tracemalloc.start()
    try:
        build_context_hash(build)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_the_tar_holds_what_context_files_lists(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": "*.log\n", "x.log": "", "lib/util.py": "u = 1\n"})
    (tmp_path / "link").symlink_to("lib")
    (tmp_path / "app.py").chmod(0o750)
    long_name = "n" * 120 + "/" + "m" * 120  # beyond ustar's 100 characters
    make(tmp_path, {long_name: "long"})
    data = b"".join(context_tar(build, service="web"))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert sorted(members) == sorted(context_files(build))
        assert members["link"].issym() and members["link"].linkname == "lib"
        assert members["app.py"].mode & 0o777 == 0o750
        assert tar.extractfile("lib/util.py").read() == b"u = 1\n"  # type: ignore[union-attr]
        assert tar.extractfile(long_name).read() == b"long"  # type: ignore[union-attr]
    assert len(data) % 512 == 0


def test_a_file_that_shrinks_while_sent_is_a_build_error(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, "shrink.txt": "x" * (4 << 20)})
    stream = context_tar(build, service="web")
    chunks = iter(stream)
    next(chunks)  # the file is being sent
    os.truncate(tmp_path / "shrink.txt", 10)
    with pytest.raises(BuildContextError, match="shrink.txt"):
        b"".join(chunks)
    assert stream.error is not None and stream.error.service == "web"


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

    def inspect_image(self, image: str) -> dict[str, Any]:
        return {"Config": {"Cmd": ["app"]}}

    def create_container(self, image: str, **kw: Any) -> dict[str, str]:
        return {"Id": "relabel"}

    def commit(self, container: str, **kw: Any) -> dict[str, str]:
        return {"Id": "sha256:labelled"}

    def remove_container(self, *a: Any, **kw: Any) -> None:
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
    assert result.message is not None and "[z-a]" in result.message


def test_the_executor_streams_the_context(tmp_path: Path) -> None:
    make(tmp_path, BASIC)
    size = 64 << 20
    with open(tmp_path / "big.bin", "wb") as f:
        f.truncate(size)
    ex, api = executor_for(tmp_path)
    tracemalloc.start()
    try:
        [result] = ex.execute([Build("web", "demo-web", "h")])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok, result.message
    assert api.sent > size
    assert peak < 8 << 20


class ShrinkingAPI(FakeAPI):
    """Truncates a file once sending started, and reports a failed send as requests does."""

    def __init__(self, victim: Path) -> None:
        super().__init__()
        self.victim = victim

    def build(self, *, fileobj: Any, **kw: Any) -> Iterator[dict[str, Any]]:
        try:
            for chunk in fileobj:
                self.sent += len(chunk)
                os.truncate(self.victim, 10)
        except Exception as exc:
            raise requests.exceptions.ConnectionError(("Connection aborted.", exc)) from exc
        yield {"aux": {"ID": "sha256:built"}}


def test_a_context_failing_while_sent_is_reported_as_such(tmp_path: Path) -> None:
    make(tmp_path, {**BASIC, "shrink.txt": "x" * (4 << 20)})
    ex, _ = executor_for(tmp_path)
    ex.session.api = ShrinkingAPI(tmp_path / "shrink.txt")
    [result] = ex.execute([Build("web", "demo-web", "h")])
    assert not result.ok and result.message is not None
    assert "changed while it was read" in result.message and "unreachable" not in result.message


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
