"""Ownership of networks and volumes: labels decide, never the engine name."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from runtime import labels as L
from runtime.actions import EnsureVolume, RemoveNetwork, RemoveVolume
from runtime.compose.model import NetworkSpec, ServiceSpec, StackSpec, VolumeMount, VolumeSpec
from runtime.errors import EngineError
from runtime.executor import Executor
from runtime.observed import Desired, ObservedState
from runtime.ownership import check_existing, owner_of, removable, resource_labels
from runtime.planner import plan_down


def app_stack(project: str = "app") -> StackSpec:
    """Project ``app`` with volume ``db_data`` and network ``db_net``: engine names app_db_data, app_db_net."""
    web = ServiceSpec("web", image="x:1", volumes=(VolumeMount("volume", "/data", "db_data"),), networks=("db_net",))
    return StackSpec(project, (web,), volumes=(VolumeSpec("db_data"),), networks=(NetworkSpec("db_net"),))


def test_owner_is_read_from_our_label_then_composes() -> None:
    assert owner_of({L.STACK: "app"}) == "app"
    assert owner_of({L.COMPOSE_PROJECT: "app_db"}) == "app_db"
    assert owner_of({}) == owner_of(None) == ""


def test_compose_labels_cannot_override_ownership() -> None:
    user = {L.STACK: "other", L.COMPOSE_PROJECT: "other", L.COMPOSE_VOLUME: "x", "team": "a"}
    got = resource_labels("volume", "app", "db_data", user=user, extra={L.STACK: "evil", "io.armstack.test": "1"})
    assert got[L.STACK] == "app" and got[L.COMPOSE_PROJECT] == "app" and got[L.COMPOSE_VOLUME] == "db_data"
    assert got["team"] == "a" and got["io.armstack.test"] == "1"
    net = resource_labels("network", "app", "db_net", user={L.COMPOSE_NETWORK: "x"})
    assert net[L.COMPOSE_NETWORK] == "db_net" and L.COMPOSE_VOLUME not in net


def test_existing_object_of_another_project_is_refused() -> None:
    with pytest.raises(EngineError, match=r"belongs to project 'app_db', not 'app'.*external"):
        check_existing("volume", "app_db_data", {L.COMPOSE_PROJECT: "app_db", L.COMPOSE_VOLUME: "data"}, "app")
    warning = check_existing("network", "app_db_net", {}, "app")
    assert warning is not None and "not created by armstack" in warning and "never removed" in warning
    assert check_existing("volume", "app_db_data", {L.STACK: "app"}, "app") is None


def test_only_objects_labelled_as_ours_are_removable() -> None:
    assert removable({L.STACK: "app"}, "app")
    assert removable({L.COMPOSE_PROJECT: "app"}, "app")
    assert not removable({L.STACK: "app_db"}, "app")
    assert not removable({}, "app")


def test_down_removes_only_our_networks_and_volumes() -> None:
    st = app_stack()
    foreign = ObservedState(networks=frozenset({"app_db_net"}), volumes=frozenset({"app_db_data"}),
                            network_owners=(("app_db_net", "app_db"),), volume_owners=(("app_db_data", "app_db"),))
    assert plan_down(foreign, st, remove_volumes=True) == []
    unlabelled = ObservedState(networks=frozenset({"app_db_net"}), volumes=frozenset({"app_db_data"}))
    assert plan_down(unlabelled, st, remove_volumes=True) == []
    ours = ObservedState(networks=frozenset({"app_db_net"}), volumes=frozenset({"app_db_data"}),
                         network_owners=(("app_db_net", "app"),), volume_owners=(("app_db_data", "app"),))
    assert plan_down(ours, st, remove_volumes=True) == [RemoveNetwork("app_db_net"), RemoveVolume("app_db_data")]


class FakeAPI:
    """The few low-level calls the executor makes for networks and volumes."""

    def __init__(self, volumes: dict[str, dict[str, str]], networks: dict[str, dict[str, str]]) -> None:
        self.vols = volumes
        self.nets = networks
        self.created: list[tuple[str, str, dict[str, str]]] = []
        self.removed: list[str] = []

    def inspect_volume(self, name: str) -> dict[str, Any]:
        if name not in self.vols:
            raise docker.errors.NotFound(f"no volume {name}")
        return {"Name": name, "Labels": self.vols[name]}

    def create_volume(self, name: str, driver: str = "local", labels: dict[str, str] | None = None,
                      **_: Any) -> None:
        self.vols[name] = dict(labels or {})
        self.created.append(("volume", name, dict(labels or {})))

    def remove_volume(self, name: str) -> None:
        self.removed.append(name)
        self.vols.pop(name, None)

    def networks(self, names: list[str] | None = None, **_: Any) -> list[dict[str, Any]]:
        return [{"Name": n, "Id": n, "Labels": lab} for n, lab in self.nets.items() if names is None or n in names]

    def inspect_network(self, name: str) -> dict[str, Any]:
        if name not in self.nets:
            raise docker.errors.NotFound(f"no network {name}")
        return {"Name": name, "Id": name, "Labels": self.nets[name]}

    def create_network(self, name: str, labels: dict[str, str] | None = None, **_: Any) -> None:
        self.nets[name] = dict(labels or {})
        self.created.append(("network", name, dict(labels or {})))

    def remove_network(self, name: str) -> None:
        self.removed.append(name)
        self.nets.pop(name, None)


class FakeClient:
    def __init__(self, api: FakeAPI) -> None:
        self.api = api


def executor(api: FakeAPI, st: StackSpec) -> Executor:
    return Executor(FakeClient(api), Desired(st), extra_labels={})  # type: ignore[arg-type]


def test_executor_refuses_another_projects_volume_and_network() -> None:
    foreign = {L.STACK: "app_db", L.COMPOSE_PROJECT: "app_db"}
    api = FakeAPI({"app_db_data": dict(foreign)}, {"app_db_net": dict(foreign)})
    ex = executor(api, app_stack())
    with pytest.raises(EngineError, match="belongs to project 'app_db'"):
        ex.ensure_volume("app_db_data")
    with pytest.raises(EngineError, match="belongs to project 'app_db'"):
        ex.ensure_network("app_db_net")
    [result] = ex.execute([EnsureVolume("app_db_data")])
    assert not result.ok and "belongs to project 'app_db'" in (result.message or "")
    # Removal re-checks the labels, whatever the plan says.
    results = ex.execute([RemoveVolume("app_db_data"), RemoveNetwork("app_db_net")])
    assert api.removed == [] and not any(r.ok for r in results)
    assert api.created == []


def test_executor_labels_what_it_creates_with_ours_last() -> None:
    st = app_stack()
    st = StackSpec(st.project, st.services, volumes=(VolumeSpec("db_data", labels=((L.STACK, "other"),)),),
                   networks=(NetworkSpec("db_net", labels=((L.COMPOSE_PROJECT, "other"), ("team", "a"))),))
    api = FakeAPI({}, {})
    ex = executor(api, st)
    ex.ensure_volume("app_db_data")
    ex.ensure_network("app_db_net")
    labels = {name: lab for _, name, lab in api.created}
    assert labels["app_db_data"][L.STACK] == "app" and labels["app_db_data"][L.COMPOSE_VOLUME] == "db_data"
    assert labels["app_db_net"][L.COMPOSE_PROJECT] == "app" and labels["app_db_net"]["team"] == "a"
    assert labels["app_db_net"][L.COMPOSE_NETWORK] == "db_net"


def test_executor_uses_an_unlabelled_volume_with_a_warning() -> None:
    api = FakeAPI({"app_db_data": {}}, {})
    lines: list[str] = []

    class Out:
        def line(self, service: str, text: str, *, stream: str = "", time: float | None = None) -> None:
            lines.append(text)

    ex = Executor(FakeClient(api), Desired(app_stack()), extra_labels={}, output=Out())  # type: ignore[arg-type]
    ex.ensure_volume("app_db_data")
    ex.ensure_volume("app_db_data")
    assert api.created == [] and len(lines) == 1 and "not created by armstack" in lines[0]
    [result] = ex.execute([RemoveVolume("app_db_data")])
    assert api.removed == [] and not result.ok
