"""``build.dockerfile_inline`` and the other build keys read into :class:`BuildSpec`."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.buildctx import build_context_hash
from runtime.compose import BuildSpec, load_stack
from runtime.compose.model import INLINE_DOCKERFILE
from runtime.errors import ComposeError

pytestmark = pytest.mark.unit


def _load(tmp_path: Path, build: str) -> BuildSpec:
    (tmp_path / "app").mkdir(exist_ok=True)
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  a:\n    build:\n      context: app\n" + build)
    spec = load_stack(path, environ={}).stack.service("a").build
    assert spec is not None
    return spec


def test_dockerfile_inline_is_kept_as_text(tmp_path: Path) -> None:
    build = _load(tmp_path, "      dockerfile_inline: |\n        FROM alpine:3.19\n        RUN echo hi\n")
    assert build.dockerfile_inline == "FROM alpine:3.19\nRUN echo hi\n"
    # Sent under a name no context file has: a build path that does not send the text fails
    # instead of building another Dockerfile of the context.
    assert build.dockerfile == INLINE_DOCKERFILE
    # No Dockerfile on disk is needed to hash it; the text is what counts.
    first = build_context_hash(build)
    other = BuildSpec(build.context, dockerfile_inline="FROM alpine:3.20\n")
    assert build_context_hash(other) != first


def test_dockerfile_and_dockerfile_inline_together_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ComposeError) as info:
        _load(tmp_path, "      dockerfile: Dockerfile.x\n      dockerfile_inline: FROM alpine\n")
    (problem,) = info.value.problems
    assert (problem.service, problem.field, problem.line) == ("a", "build.dockerfile_inline", 6)


def test_build_options(tmp_path: Path) -> None:
    build = _load(tmp_path, """\
      labels: [com.example.kind=web, plain]
      shm_size: 64m
      extra_hosts: ["db=10.0.0.2", "cache:10.0.0.3"]
      network: host
      no_cache: true
      pull: "true"
""")
    assert build.labels == (("com.example.kind", "web"), ("plain", ""))
    assert build.shm_size == 64 * 1024 * 1024
    assert build.extra_hosts == (("db", "10.0.0.2"), ("cache", "10.0.0.3"))
    assert (build.network, build.no_cache, build.pull) == ("host", True, True)


def test_extra_hosts_mapping_and_labels_mapping(tmp_path: Path) -> None:
    build = _load(tmp_path, "      extra_hosts: {db: 10.0.0.2}\n      labels: {b: '2', a: '1'}\n")
    assert (build.extra_hosts, build.labels) == ((("db", "10.0.0.2"),), (("a", "1"), ("b", "2")))


def test_bad_build_values_name_field_and_line(tmp_path: Path) -> None:
    with pytest.raises(ComposeError) as info:
        _load(tmp_path, "      shm_size: lots\n      extra_hosts: [nohost]\n      no_cache: maybe\n")
    assert [(p.field, p.line) for p in info.value.problems] == [
        ("build.shm_size", 5), ("build.extra_hosts", 6), ("build.no_cache", 7)]


def test_additional_contexts_warns_that_it_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  a:\n    build:\n      context: app\n      additional_contexts:\n"
                    "        extra: ./other\n")
    result = load_stack(path, environ={})
    assert [(w.field, w.line) for w in result.warnings] == [("build.additional_contexts", 5)]


def test_build_options_change_the_build_hash_only_when_set(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM alpine\n")
    plain = BuildSpec(str(tmp_path))
    base = build_context_hash(plain)
    assert build_context_hash(BuildSpec(str(tmp_path), no_cache=True, pull=True)) == base
    assert build_context_hash(BuildSpec(str(tmp_path), labels=(("a", "1"),))) != base
    assert build_context_hash(BuildSpec(str(tmp_path), network="host")) != base


def test_an_inline_dockerfile_is_sent_in_the_context_under_its_own_name(tmp_path: Path) -> None:
    import io
    import tarfile

    from runtime.buildctx import context_tar

    build = _load(tmp_path, "      dockerfile_inline: |\n        FROM alpine:3.19\n")
    (tmp_path / "app" / "main.py").write_text("print('hi')\n")
    with tarfile.open(fileobj=io.BytesIO(b"".join(context_tar(build))), mode="r") as tar:
        names = tar.getnames()
        member = tar.extractfile(INLINE_DOCKERFILE)
        assert member is not None and member.read() == b"FROM alpine:3.19\n"
    assert sorted(names) == sorted([INLINE_DOCKERFILE, "main.py"])
