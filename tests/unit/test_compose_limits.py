"""Files that must be refused with a clear error, never crash the loader or what runs after it.

Each case here once crashed or hung something: a float the engine parameters cannot hold, a
YAML alias bomb, a huge port range, deep interpolation nesting, a huge command string, an
env_file that never ends. The loader must refuse them with a :class:`ComposeError` naming the
file, the service, the field and the line; whatever it accepts must plan and build container
parameters without raising.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

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
