"""The linear command splitter gives exactly what ``shlex.split`` gives, errors included."""

from __future__ import annotations

import shlex
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.compose import shellwords

pytestmark = pytest.mark.unit


def shlex_result(text: str) -> list[str] | str:
    try:
        return shlex.split(text)
    except ValueError as exc:
        return f"ValueError: {exc}"


def ours(text: str) -> list[str] | str:
    try:
        return shellwords.split(text)
    except ValueError as exc:
        return f"ValueError: {exc}"


@pytest.mark.parametrize("text", [
    "", " ", "a", "a b", "  a   b  ", "a\tb\nc\rd", "'a b'", '"a b"', "a'b c'd", 'a"b c"d', "''", '""',
    "a ''", "'' a", "a '' b", '\\', 'a\\', "\\ ", "a\\ b", "\\\n", "\\'", '\\"', "'\\'", '"\\"', '"\\\\"',
    '"\\x"', '"\\$HOME"', "'unclosed", '"unclosed', '"a\\', "a'b", 'echo "$X" \'$Y\'', "sh -c 'echo hi; exit 1'",
    "#not a comment", "a#b", "é ü 🙂", "\x00", "a\\\\b", '"\'"', "'\"'", '"a""b"', "'a''b'", "\\\\", "\u00a0",
])
def test_same_as_shlex(text: str) -> None:
    assert ours(text) == shlex_result(text)


@settings(max_examples=1000, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t\n\r'\"\\ab$#é")), max_size=40))
def test_same_as_shlex_on_shell_like_text(text: str) -> None:
    assert ours(text) == shlex_result(text)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_same_as_shlex_on_any_text(text: str) -> None:
    assert ours(text) == shlex_result(text)


@pytest.mark.parametrize("unit", ["a", "a ", "'a b' ", '"a\\"b" ', "\\x"])
def test_a_megabyte_splits_in_linear_time(unit: str) -> None:
    # shlex.split takes 30-45 s on such a megabyte; linear work is well under a second even on
    # a busy machine, and a bound this loose still catches anything quadratic.
    text = unit * (1_000_000 // len(unit))
    started = time.perf_counter()
    words = shellwords.split(text)
    assert time.perf_counter() - started < 5.0
    assert words == shlex.split(unit) * (1_000_000 // len(unit)) or len(words) == 1
