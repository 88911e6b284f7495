"""Files that must be refused with a clear error, never crash the loader or what runs after it.

Each case here once crashed or hung something: a float the engine parameters cannot hold, a
YAML alias bomb, a huge port range, deep interpolation nesting, a huge command string, an
env_file that never ends. The loader must refuse them with a :class:`ComposeError` naming the
file, the service, the field and the line; whatever it accepts must plan and build container
parameters without raising.
"""

from __future__ import annotations

import difflib
import os
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from runtime.compose import load_text
from runtime.compose.model import StackSpec
from runtime.containerspec import create_params
from runtime.errors import ComposeError, Problem
from runtime.observed import Desired, ObservedState, Policy
from runtime.planner import plan

pytestmark = pytest.mark.unit


def problems(text: str, workdir: Path | str = "/nonexistent", environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ComposeError) as info:
        load_text(textwrap.dedent(text), source="stack.yml", workdir=workdir, environ=environ or {})
    return info.value.problems


def one(text: str, **kwargs: object) -> Problem:
    found = problems(text, **kwargs)  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


def runs(stack: StackSpec) -> None:
    """What `up` does with a loaded stack before touching the engine, which must not raise."""
    plan(Desired(stack), ObservedState(), Policy())
    for service in stack.services:
        create_params(stack, service.name, "sha256:0", "hash")


SERVICE = "services:\n  app:\n    image: alpine\n"


# ---- numbers the engine parameters cannot hold -------------------------------------------


@pytest.mark.parametrize("value", ["nan", ".nan", "NaN", "inf", "-inf", ".inf", "1e999", "'1e999'", "-1",
                                   "0", "1e300"])
def test_cpus_must_be_a_finite_positive_number(value: str) -> None:
    p = one(SERVICE + f"    cpus: {value}\n")
    assert (p.file, p.service, p.field, p.line) == ("stack.yml", "app", "cpus", 4)
    assert "number of CPUs" in p.message


@pytest.mark.parametrize("value", ["nan", "inf", "1e999", "-2", "0", "1e300"])
def test_deploy_cpus_must_be_a_finite_positive_number(value: str) -> None:
    p = one(SERVICE + f"    deploy:\n      resources:\n        limits:\n          cpus: {value}\n")
    assert (p.service, p.field, p.line) == ("app", "deploy.resources.limits.cpus", 7)
    assert "number of CPUs" in p.message


@pytest.mark.parametrize(("setting", "field"), [
    ("stop_grace_period: 100000000000000000000000000h", "stop_grace_period"),
    ("stop_grace_period: 1.0e+300", "stop_grace_period"),
    ("healthcheck: {test: 'true', interval: 100000000000000000000000000h}", "healthcheck.interval"),
    ("healthcheck: {test: 'true', timeout: 1.0e+300}", "healthcheck.timeout"),
    ("healthcheck: {test: 'true', retries: 100000000000000000000000000}", "healthcheck.retries"),
    ("mem_limit: 99999999999999999999999999999999999999p", "mem_limit"),
    ("mem_limit: 100000000000000000000000000000000", "mem_limit"),
    ("mem_limit: 1.0e+300", "mem_limit"),
    ("mem_limit: 99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999"
     "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999"
     "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999"
     "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999999m",
     "mem_limit"),
    ("restart: on-failure:100000000000000000000000000", "restart"),
])
def test_numbers_beyond_what_the_engine_takes_are_errors(setting: str, field: str) -> None:
    p = one(SERVICE + f"    {setting}\n")
    assert (p.service, p.field, p.line) == ("app", field, 4)
    assert "Error" not in p.message  # a sentence, not an exception name


@pytest.mark.parametrize("setting", [
    "cpus: 0.01", "cpus: '2.5'", "cpus: 64", "stop_grace_period: 1h", "mem_limit: 1g",
    "deploy: {resources: {limits: {cpus: '0.5', memory: 64m}}}",
    "healthcheck: {test: 'true', interval: 1m30s, timeout: 10s, retries: 5, start_period: 1h}",
    "restart: on-failure:5",
])
def test_ordinary_numbers_load_and_run(setting: str) -> None:
    runs(load_text(SERVICE + f"    {setting}\n", workdir="/nonexistent", environ={}).stack)


# ---- small files that expand without bound ------------------------------------------------


def laughs(levels: int) -> str:
    """A "billion laughs" file: each level lists the previous one nine times."""
    rows = ['x-l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    rows += [f"x-l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(rows) + f"\nservices:\n  app:\n    image: alpine\n    command: *l{levels}\n"


def test_an_alias_bomb_is_refused_quickly_with_its_line() -> None:
    text = laughs(6)  # 9**7 strings once expanded; the classic has nine levels
    assert len(text) < 600
    p = one(text)
    assert (p.file, p.line) == ("stack.yml", 6)  # the first alias past the limit, in x-l5
    assert "alias" in p.message and "expand" in p.message


def test_the_classic_billion_laughs_is_refused() -> None:
    p = one(laughs(9))
    assert p.line is not None and "alias" in p.message


def test_ordinary_anchors_and_merge_keys_still_load() -> None:
    text = "x-common: &common\n  image: alpine\n  environment: {A: '1', B: '2'}\n  labels: [a=b]\nservices:\n"
    text += "".join(f"  s{i}:\n    <<: *common\n    command: [run, '{i}']\n" for i in range(200))
    stack = load_text(text, workdir="/nonexistent", environ={}).stack
    assert len(stack.services) == 200 and stack.services[-1].environment == (("A", "1"), ("B", "2"))


def test_huge_port_ranges_are_refused_per_service() -> None:
    ports = "".join("      - '1-65535'\n" for _ in range(100))
    found = problems(SERVICE + "    ports:\n" + ports)
    assert found and all((p.service, p.field) == ("app", "ports") for p in found)
    assert "65535 ports" in found[0].message and found[0].line == 6


def test_huge_port_ranges_are_refused_across_services() -> None:
    text = "services:\n" + "".join(
        f"  s{i}:\n    image: alpine\n    ports: ['1-65535:1-65535/udp']\n" for i in range(50))
    found = problems(text)
    assert found and "ports" in found[0].message and found[0].service is not None


def test_a_full_port_range_is_still_allowed() -> None:
    stack = load_text(SERVICE + "    ports: ['1-65535']\n", workdir="/nonexistent", environ={}).stack
    assert len(stack.services[0].ports) == 65535


# ---- tracebacks instead of errors --------------------------------------------------------


@pytest.mark.parametrize("depth", [60, 600, 5000])
def test_deep_interpolation_nesting_is_an_error(depth: int) -> None:
    p = one(SERVICE + "    command: '" + "${X:-" * depth + "y" + "}" * depth + "'\n")
    assert (p.service, p.field, p.line) == ("app", "command", 4)
    assert "nest" in p.message


def test_moderate_interpolation_nesting_still_works() -> None:
    stack = load_text(SERVICE + "    command: '" + "${X:-" * 20 + "y" + "}" * 20 + "'\n",
                      workdir="/nonexistent", environ={}).stack
    assert stack.services[0].command == ("y",)


@pytest.mark.parametrize(("text", "line"), [
    (SERVICE + '    command: "\\U0B01F600"\n', 4),
    (SERVICE + '    command: "\\UFFFFFFFF"\n', 4),
    (SERVICE + "    labels:\n      a: 2020-13-45\n", 5),
    (SERVICE + "    labels:\n      a: !!timestamp 2020-02-30\n", 5),
    (SERVICE + "    labels:\n      a: !!binary 'a'\n", 5),
    (SERVICE + "    labels:\n      a: !!float nope\n", 5),
    (SERVICE + "    labels:\n      a: !!int nope\n", 5),
    (SERVICE + "    labels:\n      a: !!timestamp not-a-date\n", 5),  # found by the fuzz target
    (SERVICE + "    labels:\n      a: !!timestamp 2020-13-45# x\n", 5),
])
def test_values_the_yaml_layer_cannot_build_are_errors_with_the_line(text: str, line: int) -> None:
    p = one(text)
    assert p.line == line and "not valid YAML" in p.message


def test_deep_yaml_nesting_is_an_error() -> None:
    p = one(SERVICE + "    command: " + "[" * 3000 + "]" * 3000 + "\n")
    assert "nest" in p.message


# ---- linear time on long values, bounded reads of env files -------------------------------


def test_a_megabyte_command_string_loads_in_linear_time() -> None:
    word = "abcdefghi "
    text = SERVICE + "    command: '" + word * 100_000 + "'\n    entrypoint: \"" + "x\\\\\\\" " * 10_000 + "\"\n"
    started = time.perf_counter()
    stack = load_text(text, workdir="/nonexistent", environ={}).stack
    assert time.perf_counter() - started < 10.0  # shlex took 30-45 s for the command alone
    assert stack.services[0].command == ("abcdefghi",) * 100_000
    assert stack.services[0].entrypoint == ('x"',) * 10_000


def test_an_unsplittable_long_command_is_quoted_short() -> None:
    p = one(SERVICE + "    command: '\"" + "a" * 100_000 + "'\n")
    assert p.field == "command" and "No closing quotation" in p.message and len(p.message) < 300


def in_thread(target: Callable[[], object], timeout: float = 10.0) -> object:
    """``target()``'s result or exception; fails instead of hanging when it blocks."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(target())
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), "the loader blocked"
    return outcome[0]


def env_file_problems(tmp_path: Path, name: str) -> list[Problem]:
    text = SERVICE + f"    env_file: {name}\n"
    outcome = in_thread(lambda: load_text(text, source="stack.yml", workdir=tmp_path, environ={}))
    assert isinstance(outcome, ComposeError), outcome
    return outcome.problems


def test_an_env_file_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.env")
    [p] = env_file_problems(tmp_path, "pipe.env")
    assert (p.service, p.field, p.line) == ("app", "env_file", 4)
    assert "not a regular file" in p.message


def test_an_env_file_that_never_ends_is_refused(tmp_path: Path) -> None:
    [p] = env_file_problems(tmp_path, "/dev/zero")
    assert (p.service, p.field) == ("app", "env_file") and "not a regular file" in p.message


def test_a_huge_env_file_is_refused(tmp_path: Path) -> None:
    with open(tmp_path / "big.env", "w") as fh:
        fh.truncate(64 * 1024 * 1024)
    [p] = env_file_problems(tmp_path, "big.env")
    assert (p.service, p.field) == ("app", "env_file") and "larger than" in p.message


def test_a_dot_env_that_is_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / ".env")
    outcome = in_thread(lambda: load_text(SERVICE, source="stack.yml", workdir=tmp_path, environ={}))
    assert isinstance(outcome, ComposeError), outcome
    [p] = outcome.problems
    assert p.file == str(tmp_path / ".env") and "not a regular file" in p.message


# ---- names that are not strings, keys that are the same once read -------------------------


def test_a_number_and_a_string_of_the_same_name_are_a_duplicate_with_both_lines() -> None:
    p = one("services:\n  1:\n    image: a\n  '1':\n    image: b\n")
    assert p.line == 4 and "lines 2 and 4" in p.message and "keep only one" in p.message


@pytest.mark.parametrize("text", [
    SERVICE + "    environment:\n      1: a\n      '1': b\n",
    SERVICE + "    labels:\n      on: a\n      'on': b\n",
    SERVICE + "    labels:\n      \"x\": a\n      x: b\n",
])
def test_keys_written_differently_but_read_the_same_are_duplicates(text: str) -> None:
    p = one(text)
    assert p.line == 6 and "lines 5 and 6" in p.message


def test_a_merged_key_is_overridden_by_the_same_name_written_differently() -> None:
    text = "x-base: &base\n  1: merged\nservices:\n  app:\n    image: alpine\n    environment:\n" \
           "      <<: *base\n      '1': own\n"
    stack = load_text(text, workdir="/nonexistent", environ={}).stack
    assert stack.services[0].environment == (("1", "own"),)


@pytest.mark.parametrize(("text", "field", "line"), [
    ("services:\n  1:\n    image: a\n", None, 2),
    ("services:\n  true:\n    image: a\n", None, 2),
    ("services:\n  1.5:\n    image: a\n", None, 2),
    (SERVICE + "volumes:\n  1: {}\n", "volumes", 5),
    (SERVICE + "networks:\n  2:\n", "networks", 5),
    (SERVICE + "    depends_on:\n      1: {condition: service_started}\n", "depends_on", 5),
    (SERVICE + "    networks:\n      1: {}\n", "networks", 5),
])
def test_names_must_be_strings(text: str, field: str | None, line: int) -> None:
    found = problems(text)
    p = found[0]
    assert p.line == line and "must be a string" in p.message and "quote it" in p.message, found
    if field is not None:
        assert (p.field or "").split(".")[0] == field


@pytest.mark.parametrize(("text", "line"), [("\x03services: {}\n", 1), (SERVICE + "    command: a\x00b\n", 4)])
def test_characters_yaml_forbids_are_an_error_with_the_line(text: str, line: int) -> None:
    p = one(text)
    assert p.line == line and "cannot appear" in p.message


def test_thousands_of_unknown_keys_get_a_few_spelling_hints_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each hint compares the key with every known one: for thousands of keys, seconds.
    calls: list[str] = []
    real = difflib.get_close_matches

    def counting(word: str, *args: Any, **kwargs: Any) -> list[str]:
        calls.append(word)
        return real(word, *args, **kwargs)

    monkeypatch.setattr(difflib, "get_close_matches", counting)
    result = load_text(SERVICE + "".join(f"    imag{i}: x\n" for i in range(3000)), workdir="/nonexistent",
                       environ={})
    assert len(result.warnings) == 3000 and "did you mean 'image'" in result.warnings[0].message
    assert len(calls) <= 20
