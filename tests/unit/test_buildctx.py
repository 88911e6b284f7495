"""Build contexts on disk: which files are sent, and when the build hash changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.buildctx import build_context_hash, context_files, dockerfile_bases, is_ignored, parse_dockerignore
from runtime.compose.model import BuildSpec
from tests.unit.contexts import BASIC as CONTEXT
from tests.unit.contexts import make

BASIC: dict[str, str | bytes] = {**CONTEXT, "lib/util.py": "x = 1\n"}


# -- .dockerignore -----------------------------------------------------------------------------

IGNORE_CASES = [
    # (patterns, path, ignored)
    ("*.log", "a.log", True),
    ("*.log", "dir/a.log", False),          # * does not cross "/"
    ("**/*.log", "dir/sub/a.log", True),
    ("**/*.log", "a.log", True),            # **/ also matches zero directories
    ("build", "build/x/y.o", True),         # a directory excludes its contents
    ("/build", "build/y.o", True),          # leading slash is the context root
    ("build/", "build/y.o", True),
    ("build", "src/build", False),
    ("a?c", "abc", True),
    ("a?c", "a/c", False),
    ("[a-c].txt", "b.txt", True),
    ("[!a-c].txt", "b.txt", False),
    ("*.md\n!README.md", "README.md", False),
    ("*.md\n!README.md", "NOTES.md", True),
    ("!README.md\n*.md", "README.md", True),  # the last matching pattern wins
    ("docs\n!docs/keep", "docs/keep/a", False),
    ("docs\n!docs/keep", "docs/drop/a", True),
    ("# comment\n\n  tmp  ", "tmp", True),
    ("./x/../y", "y", True),
    ("dir/**", "dir/a/b", True),
    ("**", "anything/at/all", True),
]


@pytest.mark.parametrize(("patterns", "path", "ignored"), IGNORE_CASES)
def test_dockerignore_semantics(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_dockerignore(patterns)) is ignored


def test_context_files_honour_dockerignore(tmp_path: Path) -> None:
    build = make(
        tmp_path,
        {
            **BASIC,
            ".dockerignore": "*.log\nnode_modules\ndocs\n!docs/keep.md\nDockerfile\n",
            "x.log": "",
            "node_modules/pkg/index.js": "",
            "docs/keep.md": "",
            "docs/drop.md": "",
        },
    )
    (tmp_path / "empty").mkdir()
    assert context_files(build) == [
        ".dockerignore",
        "Dockerfile",  # always sent, even when ignored
        "app.py",
        "docs/keep.md",
        "empty",
        "lib",
        "lib/util.py",
    ]


def test_symlinks_are_listed_not_followed(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    (tmp_path / "link").symlink_to("lib")
    assert "link" in context_files(build)
    assert "link/util.py" not in context_files(build)


# -- the build hash ---------------------------------------------------------------------------


def test_hash_is_stable_and_independent_of_mtime(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    first = build_context_hash(build)
    os.utime(tmp_path / "app.py", (1, 1))
    assert build_context_hash(build) == first


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "app.py").write_text("print(2)\n"),
        lambda root: (root / "new.txt").write_text(""),
        lambda root: (root / "lib" / "util.py").rename(root / "lib" / "util2.py"),
        lambda root: (root / "app.py").chmod(0o755),
        lambda root: (root / "empty").mkdir(),
        lambda root: (root / "Dockerfile").write_text("FROM alpine:3.20\n"),
        lambda root: (root / ".dockerignore").write_text("lib\n"),
    ],
)
def test_hash_changes_with_inputs(tmp_path: Path, change: object) -> None:
    build = make(tmp_path, BASIC)
    before = build_context_hash(build)
    change(tmp_path)  # type: ignore[operator]
    assert build_context_hash(build) != before


def test_ignored_files_do_not_change_the_hash(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": "*.log\ncache/\n"})
    before = build_context_hash(build)
    (tmp_path / "x.log").write_text("noise")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "blob").write_text("noise")
    assert build_context_hash(build) == before


def test_args_target_and_base_ids_change_the_hash(tmp_path: Path) -> None:
    build = make(tmp_path, BASIC)
    base = build_context_hash(build)
    assert build_context_hash(BuildSpec(build.context, args=(("V", "1"),))) != base
    assert build_context_hash(BuildSpec(build.context, target="prod")) != base
    with_id = build_context_hash(build, {"alpine:3.19": "sha256:1"})
    assert with_id != base
    assert build_context_hash(build, {"alpine:3.19": "sha256:2"}) != with_id
    assert build_context_hash(build, {"unrelated:1": "sha256:3"}) == base


def test_dockerfile_outside_the_context(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    make(ctx, {"app.py": "1"})
    (tmp_path / "Dockerfile.prod").write_text("FROM alpine\n")
    build = BuildSpec(context=str(ctx), dockerfile="../Dockerfile.prod")
    assert context_files(build) == ["app.py"]
    before = build_context_hash(build)
    (tmp_path / "Dockerfile.prod").write_text("FROM busybox\n")
    assert build_context_hash(build) != before


# -- FROM lines -------------------------------------------------------------------------------


def test_dockerfile_bases() -> None:
    text = """
    # syntax=docker/dockerfile:1
    ARG BASE=debian:bookworm-slim
    ARG TAG="3.19"
    FROM --platform=$BUILDPLATFORM golang:1.22 AS build
    RUN make \\
        all
    FROM ${BASE} AS runtime
    FROM alpine:${TAG}
    from build
    FROM scratch
    COPY --from=build /out /
    FROM alpine:3.19
    FROM ${MISSING:-busybox}
    """
    assert dockerfile_bases(text) == ["golang:1.22", "debian:bookworm-slim", "alpine:3.19", "busybox"]
    assert dockerfile_bases(text, {"TAG": "3.20"})[2] == "alpine:3.20"
    assert dockerfile_bases("FROM Build AS x\nFROM x\n") == ["Build"]
