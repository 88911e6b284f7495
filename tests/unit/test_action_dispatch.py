"""Every action kind has its handler, and results carry the error object, not just its text.

mypy checks the ``match`` statements over ``Action`` (``assert_never``); these tests check the
same at run time, so a kind added to the union without a handler fails here too.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

import docker.errors
import pytest
import requests

from runtime.actions import (
    Action,
    ActionResult,
    EnsureNetwork,
    EnsureVolume,
    Pull,
    RemoveNetwork,
    RemoveVolume,
    Start,
    Wait,
    describe,
)
from runtime.compose.model import ServiceSpec, StackSpec
from runtime.errors import DiskFullError, EngineError, EngineUnreachable
from runtime.executor import Executor
from runtime.observed import Desired
from runtime.planner import _stage_key

pytestmark = pytest.mark.unit

KINDS: tuple[type, ...] = typing.get_args(Action)


def sample(kind: type) -> Any:
    """An instance of an action kind with every field filled in (all fields are strings)."""
    return kind(*("x" for _ in dataclasses.fields(kind)))


class _Client:
    def __init__(self, api: object) -> None:
        self.api = api


def executor(api: object) -> Executor:
    st = StackSpec("app", (ServiceSpec("web", image="x:1"),))
    return Executor(_Client(api), Desired(st), extra_labels={})  # type: ignore[arg-type]


def test_the_union_lists_every_action_class() -> None:
    import runtime.actions as module

    classes = {c for c in vars(module).values()
               if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == module.__name__}
    assert classes - set(KINDS) == {ActionResult, module.BuildReport}


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_the_executor_has_a_handler_for_every_kind(kind: type, monkeypatch: pytest.MonkeyPatch) -> None:
    ex = executor(object())
    calls: list[tuple[str, Any]] = []
    for part in (ex.resources, ex.images, ex.containers):
        for name, member in vars(type(part)).items():
            if not name.startswith("_") and callable(member):
                # A new container's (id, downtime) fits every handler: the others' answers are unused.
                monkeypatch.setattr(part, name, lambda *a, _n=name, **k: (calls.append((_n, a[0] if a else None)),
                                                                            ("c1", None))[1])
    action = sample(kind)
    ex._dispatch_made(action, [])
    # Wait is reported, not executed; every other kind goes to exactly one handler, with itself
    # (networks and volumes: with their name).
    expected = action.name if isinstance(action, EnsureNetwork | EnsureVolume | RemoveNetwork | RemoveVolume) \
        else action
    assert [a for _, a in calls] == ([] if kind is Wait else [expected]), calls


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_kind_is_described_and_staged(kind: type) -> None:
    action = sample(kind)
    assert describe(action)
    assert (_stage_key(action, {"x": 0}) is None) == (kind is Wait)


class _FailingAPI:
    def pull(self, repo: str, tag: str | None = None) -> None:
        raise docker.errors.APIError("500", explanation="write /var/lib/docker/tmp/x: no space left on device")

    def start(self, container_id: str) -> None:
        raise requests.exceptions.ConnectionError("connection refused")


def test_results_carry_the_error_object() -> None:
    ex = executor(_FailingAPI())
    [pulled] = ex.execute([Pull("web", "x:1")])
    assert not pulled.ok and isinstance(pulled.error, DiskFullError) and pulled.error.service == "web"
    assert pulled.message is not None and pulled.message.startswith("Could not pull image 'x:1' for service 'web'")
    [started] = ex.execute([Start("web", "c1")])
    assert isinstance(started.error, EngineUnreachable) and started.error.exit_code == 3
    assert started.message is not None and "unreachable" in started.message


def test_a_result_without_error_has_no_message() -> None:
    assert ActionResult(Wait("a", "b", "service_started"), True).message is None
    assert ActionResult(Wait("a", "b", "service_started"), False, EngineError("Boom.")).message == "Boom."


def test_every_fault_of_the_scenario_table_has_its_entry() -> None:
    # The e2e table's checks match on FaultName (mypy, `make test`); the table itself is checked here.
    from tests.e2e import test_scenarios as sc

    assert set(sc.FAULTS) == set(typing.get_args(sc.FaultName))
    assert {f.restarts for f in sc.FAULTS.values()} <= set(typing.get_args(sc.Restarts))
    assert {f for _, f in sc.ARMV7} | {f for _, f in sc.QUICK} <= set(sc.FAULTS)
