"""Variable substitution: docker compose's syntax, table-tested, plus properties."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.compose.interpolate import InterpolationError, MissingVariable, interpolate, interpolate_tree
from runtime.compose.yamlnodes import parse_yaml

ENV = {"SET": "value", "EMPTY": "", "N": "3"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plain", "plain"),
        ("$SET", "value"),
        ("${SET}", "value"),
        ("a${SET}b", "avalueb"),
        ("$SET-x", "value-x"),
        ("$SET.x", "value.x"),
        ("${SET:-d}", "value"),
        ("${EMPTY:-d}", "d"),
        ("${UNSET:-d}", "d"),
        ("${SET-d}", "value"),
        ("${EMPTY-d}", ""),
        ("${UNSET-d}", "d"),
        ("${UNSET:-}", ""),
        ("${SET:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${UNSET:+alt}", ""),
        ("${SET+alt}", "alt"),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${SET:?need it}", "value"),
        ("${EMPTY?need it}", ""),
        ("$$", "$"),
        ("$$SET", "$SET"),
        ("$${SET}", "${SET}"),
        ("cost: 5$", "cost: 5$"),
        ("$1 and $ alone", "$1 and $ alone"),
        ("${UNSET:-${SET}}", "value"),
        ("${UNSET:-${ALSO_UNSET:-deep}}", "deep"),
        ("${UNSET:-a b c}", "a b c"),
        ("${UNSET:-$SET}", "value"),
        ("${N}${N}", "33"),
        ("$UNSET", ""),
        ("${UNSET}", ""),
        ("x${UNSET}y", "xy"),
    ],
)
def test_interpolation_table(text: str, expected: str) -> None:
    assert interpolate(text, ENV)[0] == expected


def test_unset_plain_variables_are_reported_once_each() -> None:
    assert interpolate("$A ${A} ${B} ${C:-x} ${D-y} ${SET}", ENV)[1] == ("A", "B")


def test_defaults_are_only_expanded_when_used() -> None:
    assert interpolate("${SET:-${NOT_USED}}", ENV) == ("value", ())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${UNSET:?set UNSET to the device id}", "required variable UNSET is missing a value: set UNSET to"),
        ("${EMPTY:?no empty}", "required variable EMPTY is missing a value: no empty"),
        ("${UNSET?}", "required variable UNSET is missing a value$"),
        ("${UNSET:?needs ${SET}}", "missing a value: needs value"),
    ],
)
def test_required_variables(text: str, message: str) -> None:
    with pytest.raises(MissingVariable, match=message) as info:
        interpolate(text, ENV)
    assert info.value.variable in ("UNSET", "EMPTY")


@pytest.mark.parametrize("text", ["${}", "${SET", "${1abc}", "${SET:}", "${SET%x}", "${ SET}", "${SET:*x}"])
def test_malformed_expressions(text: str) -> None:
    with pytest.raises(InterpolationError, match="invalid interpolation format"):
        interpolate(text, ENV)


def test_a_lookup_function_works_like_a_mapping() -> None:
    assert interpolate("${A}-${B:-b}", {"A": "a"}.get) == ("a-b", ())


def test_tree_interpolates_values_not_keys_and_keeps_lines() -> None:
    tree = parse_yaml("services:\n  web:\n    image: ${IMG}\n    labels:\n      $KEY: ${SET}\n")
    result = interpolate_tree(tree, {"IMG": "nginx", "SET": "v"})
    web = result.value["services"]["web"]
    assert web["image"] == "nginx"
    assert web["labels"] == {"$KEY": "v"}
    assert web.line_of("labels") == 4
    assert result.errors == [] and result.undefined == []


def test_tree_reports_path_and_line_of_missing_variables() -> None:
    tree = parse_yaml("services:\n  web:\n    environment:\n      - A=${TOKEN:?get a token}\n")
    result = interpolate_tree(tree, {})
    [issue] = result.errors
    assert issue.path == ("services", "web", "environment")
    assert issue.line == 4
    assert issue.variable == "TOKEN"
    assert "get a token" in issue.message


def test_tree_skips_extension_fields() -> None:
    tree = parse_yaml("x-unused: ${NOPE:?never needed}\nservices: {}\n")
    result = interpolate_tree(tree, {})
    assert result.errors == [] and result.value["x-unused"] == "${NOPE:?never needed}"


@settings(max_examples=60, deadline=None)
@given(st.text())
def test_escaped_text_comes_back_unchanged(text: str) -> None:
    assert interpolate(text.replace("$", "$$"), {}) == (text, ())


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="${}:-+?AB_ xyz", max_size=30))
def test_interpolation_only_raises_interpolation_errors(text: str) -> None:
    try:
        value, undefined = interpolate(text, {"A": "1", "B": ""})
    except InterpolationError:
        return
    assert isinstance(value, str)
    assert all(re.fullmatch(r"[_A-Za-z][_A-Za-z0-9]*", name) for name in undefined)


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=40))
def test_text_without_dollar_is_unchanged(text: str) -> None:
    assert interpolate(text, ENV) == (text, ())
