""".dockerignore files as Docker reads them: byte order marks, bytes that are not UTF-8,
patterns Docker refuses, and patterns that must not take exponential time to match."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from runtime.buildctx import build_context_hash, context_files, is_ignored, parse_dockerignore
from runtime.errors import BuildContextError, EngineError
from tests.unit.contexts import BASIC, make
from tests.unit.deadline import deadline

# (patterns, path, ignored) beyond the basic cases in test_buildctx.py, as Docker decides them.
MORE_CASES = [
    ("[]a]", "]", True),                  # a "]" first in a class is a member, as in Go
    ("[!]a]", "b", True),
    ("**.log", "x/y/z.log", True),        # "**" inside a name crosses directories
    ("**.log", "z.log", True),
    ("a**b", "a/x/y/b", True),
    ("a**b", "ab", True),
    ("a**b", "a/x/c", False),
    ("dir/**", "dir", False),             # "dir/**" is what is below dir, not dir itself
    ("dir/**", "dir/x", True),
    ("**/**/x", "x", True),
    ("**/**/x", "a/b/x", True),
    ("a/**/b", "a/b", True),
    ("a/**/b", "a/x/y/b", True),
    ("a/**/b", "a/x/y/c", False),
    ("*a*b", "xaYbZb", True),
    ("*a*b", "xaYbZ", False),
    ("?.txt", "\n.txt", True),            # any character of a name, newline included
]


@pytest.mark.parametrize(("patterns", "path", "ignored"), MORE_CASES)
def test_more_dockerignore_semantics(patterns: str, path: str, ignored: bool) -> None:
    assert is_ignored(path, parse_dockerignore(patterns)) is ignored


@pytest.mark.parametrize("pattern", ["[z-a]", "[abc", "x/[]"])
def test_patterns_docker_refuses_are_refused(pattern: str) -> None:
    with pytest.raises(BuildContextError, match="pattern"):
        parse_dockerignore(pattern + "\n")


def test_a_bad_pattern_names_the_file_the_line_and_the_pattern(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": "*.log\n[z-a]\n"})
    with pytest.raises(BuildContextError) as err:
        build_context_hash(build)
    assert isinstance(err.value, EngineError)
    text = str(err.value)
    assert str(tmp_path / ".dockerignore") in text and "line 2" in text and "'[z-a]'" in text


def test_a_dockerignore_that_is_not_utf8_matches_bytewise_like_docker(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": b"caf\xe9.txt\n"})
    (tmp_path / os.fsdecode(b"caf\xe9.txt")).write_text("secret")
    (tmp_path / "caf\u00e9.txt").write_text("kept")  # the UTF-8 spelling is another name
    files = context_files(build)
    assert os.fsdecode(b"caf\xe9.txt") not in files
    assert "caf\u00e9.txt" in files
    build_context_hash(build)


def test_a_dockerignore_with_a_utf8_bom_keeps_its_first_pattern(tmp_path: Path) -> None:
    build = make(tmp_path, {**BASIC, ".dockerignore": b"\xef\xbb\xbfdeploy.key\n*.log\n", "deploy.key": "KEY"})
    assert "deploy.key" not in context_files(build)
    before = build_context_hash(build)
    (tmp_path / "deploy.key").write_text("ANOTHER KEY")
    assert build_context_hash(build) == before
    assert is_ignored("deploy.key", parse_dockerignore("\ufeffdeploy.key\n"))


@pytest.mark.parametrize(
    ("pattern", "path"),
    [
        ("**/**/**/**/**/**/**/**/**/**/*a", "/".join(["b" * 40] * 30)),
        ("*a*a*a*a*a*a*a*a*a*a*b", "a" * 250),
        ("**a**a**a**a**a**a**b", "/".join(["a" * 30] * 8)),
    ],
)
def test_patterns_match_in_bounded_time(pattern: str, path: str) -> None:
    # Backtracking regexes took seconds to hours here; the cases take microseconds now.
    patterns = parse_dockerignore(pattern)
    t0 = time.monotonic()
    with deadline(5):
        assert not is_ignored(path, patterns)
    assert time.monotonic() - t0 < 0.5
