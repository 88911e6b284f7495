"""``.env`` beside the compose file and per-service ``env_file:``."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.compose import load_text
from runtime.compose.env import parse_env
from runtime.errors import ComposeError


@pytest.mark.parametrize(
    ("line", "key", "value"),
    [
        ("A=1", "A", "1"),
        ("A = 1 ", "A", "1"),
        ("export A=1", "A", "1"),
        ("A=", "A", ""),
        ("A='single $X # kept'", "A", "single $X # kept"),
        ('A="double ${X} \\"q\\" \\n"', "A", 'double x "q" \n'),
        ('A="escaped \\$X"', "A", "escaped $X"),
        ("A=value # comment", "A", "value"),
        ("A=value#not-a-comment", "A", "value#not-a-comment"),
        ("A=${X:-d}/${MISSING:-m}", "A", "x/m"),
        ("A.b-c=1", "A.b-c", "1"),
        ("A=with spaces inside", "A", "with spaces inside"),
        ("A='x' # comment", "A", "x"),
    ],
)
def test_env_lines(line: str, key: str, value: str) -> None:
    parsed = parse_env(line, {"X": "x"}.get)
    assert parsed.problems == []
    assert parsed.values == {key: value}


def test_comments_blank_lines_and_bare_keys() -> None:
    parsed = parse_env("# comment\n\n  # indented\nFROM_ENV\nNOT_SET\nB=2\n", {"FROM_ENV": "e"}.get)
    assert parsed.values == {"FROM_ENV": "e", "B": "2"}


def test_multiline_quoted_values() -> None:
    parsed = parse_env('KEY="line one\nline two"\nNEXT=1\n')
    assert parsed.values == {"KEY": "line one\nline two", "NEXT": "1"}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("A=1\nnot a line\n", 2, "expected KEY=VALUE"),
        ("=1", 1, "expected KEY=VALUE"),
        ("A='open\nB=2\n", 1, "never closed"),
        ('A="x" y', 1, "text after its closing quote"),
        ("A=${", 1, "invalid ${...} substitution"),
    ],
)
def test_env_problems_carry_lines(text: str, line: int, message: str) -> None:
    [(found_line, found_message)] = parse_env(text).problems
    assert found_line == line
    assert message in found_message


def test_later_keys_see_earlier_ones() -> None:
    assert parse_env("A=1\nB=${A}2\n").values == {"A": "1", "B": "12"}


def test_dotenv_feeds_interpolation_and_process_env_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("TAG=1.0\nPORT=8080\n")
    text = "services:\n  web:\n    image: nginx:${TAG}\n    ports: ['${PORT}:80']\n"
    result = load_text(text, workdir=tmp_path, environ={"PORT": "9000"})
    web = result.stack.service("web")
    assert web.image == "nginx:1.0"
    assert web.ports[0].published == 9000


def test_dotenv_problems_name_the_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("OK=1\nthis is wrong\n")
    with pytest.raises(ComposeError) as info:
        load_text("services:\n  web:\n    image: x\n", workdir=tmp_path, environ={})
    [problem] = info.value.problems
    assert problem.file == str(tmp_path / ".env") and problem.line == 2


def test_env_file_is_merged_and_environment_wins(tmp_path: Path) -> None:
    (tmp_path / "common.env").write_text("A=from-file\nB=from-file\n")
    (tmp_path / "more.env").write_text("C=${HOST_VAR}\n")
    text = (
        "services:\n  web:\n    image: x\n    env_file: [common.env, ./more.env]\n"
        "    environment:\n      B: explicit\n"
    )
    web = load_text(text, workdir=tmp_path, environ={"HOST_VAR": "h"}).stack.service("web")
    assert web.environment == (("A", "from-file"), ("B", "explicit"), ("C", "h"))


def test_env_file_as_a_string_and_optional_files(tmp_path: Path) -> None:
    (tmp_path / "one.env").write_text("A=1\n")
    text = (
        "services:\n  a:\n    image: x\n    env_file: one.env\n"
        "  b:\n    image: x\n    env_file:\n      - path: ./absent.env\n        required: false\n"
    )
    stack = load_text(text, workdir=tmp_path, environ={}).stack
    assert stack.service("a").environment == (("A", "1"),)
    assert stack.service("b").environment == ()


def test_missing_env_file_is_a_problem(tmp_path: Path) -> None:
    text = "services:\n  web:\n    image: x\n    env_file:\n      - nope.env\n"
    with pytest.raises(ComposeError) as info:
        load_text(text, workdir=tmp_path, environ={})
    [problem] = info.value.problems
    assert (problem.service, problem.field, problem.line) == ("web", "env_file", 5)
    assert "nope.env does not exist" in problem.message


def test_bad_line_in_env_file_names_that_file(tmp_path: Path) -> None:
    (tmp_path / "bad.env").write_text("GOOD=1\n\n???\n")
    with pytest.raises(ComposeError) as info:
        load_text("services:\n  web:\n    image: x\n    env_file: bad.env\n", workdir=tmp_path, environ={})
    [problem] = info.value.problems
    assert problem.file == str(tmp_path / "bad.env") and problem.line == 3 and problem.service == "web"
