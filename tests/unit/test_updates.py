"""Selective updates on plain data: update strategies' plan sequences, who gets touched, reports."""

from __future__ import annotations

import dataclasses

import pytest

from runtime import labels
from runtime.actions import (
    Action,
    ActionResult,
    Build,
    BuildReport,
    Create,
    Pull,
    Recreate,
    Remove,
    RemoveImage,
    Stop,
    Wait,
)
from runtime.compose.model import ServiceSpec, StackSpec
from runtime.errors import EngineError
from runtime.observed import Desired, Policy
from runtime.planner import (
    DELETE_THEN_DOWNLOAD,
    DOWNLOAD_THEN_KILL,
    KILL_THEN_DOWNLOAD,
    plan,
    stages,
    update_strategy,
)
from runtime.report import full_report, merge_results, removed_services, totals
from tests.unit.specs import FakeEngine, converge, desired, kinds, of, stack, svc

NEW = (("app", "new"),)   # build hashes after a one-line change of app's Dockerfile


def strategy(spec: ServiceSpec, name: str) -> ServiceSpec:
    return dataclasses.replace(spec, labels=((labels.UPDATE_STRATEGY, name),))


def up(st: StackSpec) -> FakeEngine:
    state, _, _ = converge(desired(st))
    return FakeEngine(st, state)


def changed(st: StackSpec) -> Desired:
    hashes = tuple((s.name, "new" if s.name == "app" else f"bh-{s.name}") for s in st.services if s.build)
    return Desired(st, build_hashes=hashes)


def rounds(d: Desired, engine: FakeEngine, policy: Policy | None = None) -> list[list[Action]]:
    """Every non-empty plan until convergence, applied to ``engine``."""
    out: list[list[Action]] = []
    for _ in range(10):
        actions = [a for a in plan(d, engine.state, policy or Policy(now=engine.now)) if not isinstance(a, Wait)]
        if not actions:
            return out
        out.append(actions)
        engine.apply(actions)
    raise AssertionError(f"no convergence: {out[-1]}")


def ids(engine: FakeEngine) -> dict[str, str]:
    return {c.service: c.id for c in engine.state.containers}


# -- strategies ------------------------------------------------------------------------------


def test_strategy_label_parsing() -> None:
    assert update_strategy(svc("a")) == DOWNLOAD_THEN_KILL
    assert update_strategy(strategy(svc("a"), " Kill-Then-Download ")) == KILL_THEN_DOWNLOAD
    assert update_strategy(strategy(svc("a"), DELETE_THEN_DOWNLOAD)) == DELETE_THEN_DOWNLOAD
    assert update_strategy(strategy(svc("a"), "yolo")) == DOWNLOAD_THEN_KILL   # unknown: the safe default


def test_download_then_kill_builds_first_then_recreates() -> None:
    st = stack(svc("app", build=True))
    engine = up(st)
    old = ids(engine)["app"]
    plans = rounds(changed(st), engine)
    assert [kinds(p) for p in plans] == [["Build"], ["Recreate"]]
    assert plans[0] == [Build("app", "demo-app", "new")]
    recreate = of(plans[1], Recreate)[0]
    assert (recreate.container_id, recreate.image_id) == (old, "sha256:demo-app-new")


def test_kill_then_download_stops_then_builds_then_recreates() -> None:
    st = stack(strategy(svc("app", build=True), KILL_THEN_DOWNLOAD))
    engine = up(st)
    old = ids(engine)["app"]
    plans = rounds(changed(st), engine)
    assert [kinds(p) for p in plans] == [["Stop", "Build"], ["Recreate"]]
    assert plans[0][0] == Stop("app", old, reason="update")
    # The stop runs before the build: one stage each, in that order.
    assert stages(plans[0], st) == [[Stop("app", old, reason="update")], [Build("app", "demo-app", "new")]]
    assert of(plans[1], Recreate)[0].container_id == old   # the stopped container is the one replaced


def test_delete_then_download_removes_container_and_image_before_building() -> None:
    st = stack(strategy(svc("app", build=True), DELETE_THEN_DOWNLOAD))
    engine = up(st)
    old = ids(engine)["app"]
    old_image = engine.state.containers[0].image_id
    plans = rounds(changed(st), engine)
    assert [kinds(p) for p in plans] == [["Remove", "RemoveImage", "Build"], ["Create"]]
    assert plans[0][:2] == [Remove("app", old, reason="update"), RemoveImage("app", old_image)]
    assert [kinds(s) for s in stages(plans[0], st)] == [["Remove"], ["RemoveImage"], ["Build"]]


def test_delete_then_download_of_a_pulled_image() -> None:
    st = stack(strategy(svc("web", image="nginx:1"), DELETE_THEN_DOWNLOAD))
    engine = up(st)
    old = ids(engine)["web"]
    st2 = stack(strategy(svc("web", image="nginx:2"), DELETE_THEN_DOWNLOAD))
    engine.stack = st2
    plans = rounds(desired(st2), engine)
    assert plans[0] == [Remove("web", old, reason="update"), RemoveImage("web", "sha256:nginx:1"),
                        Pull("web", "nginx:2")]
    assert kinds(plans[1]) == ["Create"]


def test_an_image_another_container_uses_is_not_removed() -> None:
    st = stack(strategy(svc("a", image="base:1"), DELETE_THEN_DOWNLOAD), svc("b", image="base:1"))
    engine = up(st)
    st2 = stack(strategy(svc("a", image="base:2"), DELETE_THEN_DOWNLOAD), svc("b", image="base:1"))
    engine.stack = st2
    first = plan(desired(st2), engine.state, Policy())
    assert kinds(first) == ["Remove", "Pull"]


@pytest.mark.parametrize("name", [KILL_THEN_DOWNLOAD, DELETE_THEN_DOWNLOAD])
def test_a_held_down_service_is_not_started_while_its_image_is_pending(name: str) -> None:
    # Power cut after the stop, mid-build: the old container is exited, the tag still old.
    st = stack(strategy(svc("app", build=True), name))
    engine = up(st)
    c = engine.state.containers[0]
    engine.state = dataclasses.replace(engine.state, containers=(dataclasses.replace(c, status="exited"),))
    policy = Policy(now=1e6, applied_at=1e9)   # the container stopped before this apply began
    first = plan(changed(st), engine.state, policy)
    assert "Start" not in kinds(first) and "Build" in kinds(first)
    # The default strategy starts the old one meanwhile (it keeps serving during the build).
    st_default = stack(svc("app", build=True))
    assert kinds(plan(changed(st_default), engine.state, policy)) == ["Build", "Start"]


def test_kill_then_download_restarts_the_old_container_when_the_build_failed() -> None:
    st = stack(strategy(svc("app", build=True), KILL_THEN_DOWNLOAD))
    engine = up(st)
    engine.apply(plan(changed(st), engine.state, Policy()))   # Stop + Build, but pretend the build failed
    engine.state = dataclasses.replace(engine.state, images=tuple(
        dataclasses.replace(i, labels=((labels.BUILD_HASH, "bh-app"),), id="sha256:demo-app-bh-app")
        for i in engine.state.images))
    assert engine.state.containers[0].status == "exited"
    failed = Policy(now=1e6, image_failed=frozenset({"app"}))
    assert kinds(plan(changed(st), engine.state, failed)) == ["Build", "Start"]
    assert "Stop" not in kinds(plan(changed(st), dataclasses.replace(
        engine.state, containers=(dataclasses.replace(engine.state.containers[0], status="running"),)), failed))


@pytest.mark.parametrize("name", [DOWNLOAD_THEN_KILL, KILL_THEN_DOWNLOAD, DELETE_THEN_DOWNLOAD])
def test_every_strategy_converges_to_one_up_to_date_container(name: str) -> None:
    st = stack(strategy(svc("app", build=True), name), svc("db"))
    engine = up(st)
    d = changed(st)
    rounds(d, engine)
    final, _, plans = converge(d, engine.state)
    assert plans[-1] == []
    assert len(final.containers_of("app")) == 1
    assert final.image("demo-app").label(labels.BUILD_HASH) == "new"  # type: ignore[union-attr]


# -- who is touched --------------------------------------------------------------------------


def test_only_the_changed_service_and_its_joined_dependents_are_replaced() -> None:
    st = stack(
        svc("app", build=True),
        svc("sidecar", net="app"),               # shares app's network namespace: must follow
        svc("backup", vfrom=["app"]),            # mounts app's volumes: must follow
        svc("client", deps=["app"]),             # only ordering: keeps its container
        svc("other", build=True),                # unrelated
    )
    engine = up(st)
    before = ids(engine)
    plans = rounds(changed(st), engine)
    after = ids(engine)
    assert {a.service for p in plans for a in p if isinstance(a, Build)} == {"app"}
    assert {a.service for p in plans for a in p if isinstance(a, Recreate)} == {"app", "sidecar", "backup"}
    assert {s for s in before if before[s] == after[s]} == {"client", "other"}


def test_no_change_plans_nothing() -> None:
    st = stack(svc("app", build=True), svc("web", net="app"), svc("db"))
    engine = up(st)
    assert plan(desired(st), engine.state, Policy(now=1e6)) == []


def test_adding_a_service_creates_only_it() -> None:
    st = stack(svc("app", build=True), svc("db"))
    engine = up(st)
    before = ids(engine)
    st2 = stack(svc("app", build=True), svc("db"), svc("cache", image="redis:7"))
    engine.stack = st2
    plans = rounds(desired(st2), engine)
    assert [kinds(p) for p in plans] == [["Pull"], ["Create"]]
    assert {k: v for k, v in ids(engine).items() if k != "cache"} == before


def test_removing_a_service_removes_only_its_container_and_keeps_its_volume() -> None:
    st = stack(svc("app", build=True), svc("db", volumes=["dbdata"]))
    engine = up(st)
    before = ids(engine)
    st2 = stack(svc("app", build=True))
    engine.stack = st2
    actions = plan(desired(st2), engine.state, Policy())
    assert actions == [Remove("db", before["db"], reason="orphan")]
    engine.apply(actions)
    assert ids(engine) == {"app": before["app"]}
    assert "demo_dbdata" in engine.state.volumes


# -- reports ---------------------------------------------------------------------------------


def test_report_of_a_strategy_update_with_totals() -> None:
    st = stack(strategy(svc("app", build=True), DELETE_THEN_DOWNLOAD), svc("db"))
    results = [
        ActionResult(Remove("app", "c1", reason="update"), True),
        ActionResult(RemoveImage("app", "sha256:old"), True),
        ActionResult(Build("app", "demo-app", "new"), True, build=BuildReport("app", 6, 5, 2.5)),
        ActionResult(Remove("gone", "c9", reason="orphan"), True),
    ]
    report = merge_results({}, results)
    report = merge_results(report, [ActionResult(Create("app", "sha256:new", "h"), True, downtime=3.25)])
    full = full_report(st, report)
    assert full["app"] == {"rebuilt": True, "steps": 6, "cached": 5, "build_seconds": 2.5, "recreated": True,
                           "created": False, "downtime_seconds": 3.25, "strategy": DELETE_THEN_DOWNLOAD}
    assert full["db"]["rebuilt"] is False and full["db"]["recreated"] is False
    assert full["db"]["strategy"] == DOWNLOAD_THEN_KILL
    assert "gone" not in full
    removed = removed_services(st, report)
    assert removed == ["gone"]
    assert totals(full, removed) == {"rebuilt": 1, "recreated": 1, "created": 0, "removed": 1, "steps": 6,
                                     "cached": 5, "build_seconds": 2.5, "downtime_seconds": 3.25}


def test_a_plain_create_is_not_a_recreate() -> None:
    report = merge_results({}, [ActionResult(Create("db", "sha256:x", "h"), True)])
    assert report["db"]["created"] is True and report["db"]["recreated"] is False


def test_failed_actions_do_not_count() -> None:
    report = merge_results({}, [ActionResult(Build("app", "demo-app", "x"), False, EngineError("boom"))])
    assert report == {}


# -- the harness's typed report --------------------------------------------------------------


def test_update_report_parses_the_runtime_json_and_stays_a_mapping() -> None:
    from harness.report import UpdateReport

    doc = {"generation": 2, "ok": True, "error": None, "finished_at": 1.0,
           "report": {"api": {"rebuilt": True, "steps": 8, "cached": 6, "build_seconds": 1.5, "recreated": True,
                              "created": False, "downtime_seconds": 0.7, "strategy": "download-then-kill"},
                      "db": {"rebuilt": False, "recreated": False}},
           "totals": {"rebuilt": 1}, "removed": ["old"]}
    report = UpdateReport.from_json(doc)
    assert report.ok and report.generation == 2 and report.removed == ("old",)
    assert report.rebuilt == ["api"] and report.recreated == ["api"] and report.untouched == ["db"]
    assert report.service("api").cached == 6 and report.service("api").downtime_seconds == 0.7
    assert report.build_seconds == 1.5
    assert report["report"]["api"]["steps"] == 8 and report.get("ok") is True and "totals" in report
    with pytest.raises(KeyError, match="api, db"):
        report.service("web")
    empty = UpdateReport.from_json(None)
    assert not empty.ok and empty.services == {} and dict(empty) == {}
