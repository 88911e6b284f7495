"""The planner, on plain data: rules case by case, then properties over generated states."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.actions import (
    Action,
    Build,
    Create,
    EnsureNetwork,
    EnsureVolume,
    Pull,
    Recreate,
    Remove,
    RemoveImage,
    RemoveNetwork,
    RemoveVolume,
    Restart,
    Start,
    Stop,
    Wait,
)
from runtime.compose.model import Dependency, StackSpec, VolumeSpec
from runtime.labels import UPDATE_STRATEGY
from runtime.observed import Desired, ObservedContainer, ObservedState, Policy, ServiceRuntime
from runtime.planner import (
    CONTAINER_ACTIONS,
    dependency_satisfied,
    plan,
    plan_down,
    service_order,
    stages,
)
from tests.unit.specs import (
    FakeEngine,
    build_hash_of,
    container,
    converge,
    desired,
    expected_hash,
    image,
    kept_container,
    kinds,
    network,
    of,
    stack,
    svc,
)

IMG = "alpine:3.19"


def up(st: StackSpec) -> ObservedState:
    """A converged state for ``st``."""
    state, _, _ = converge(desired(st))
    return state


def replan(st: StackSpec, state: ObservedState, policy: Policy | None = None) -> list[Action]:
    return plan(desired(st), state, policy or Policy(now=1e6))


# -- images --------------------------------------------------------------------------------


class TestImages:
    def test_missing_image_is_pulled_and_no_container_created(self) -> None:
        st = stack(svc("web"))
        assert replan(st, ObservedState()) == [Pull("web", IMG)]

    def test_present_image_creates(self) -> None:
        st = stack(svc("web"))
        actions = replan(st, ObservedState(images=(image(IMG),)))
        assert kinds(actions) == ["Create"]
        assert actions[0].image_id == f"sha256:{IMG}"

    def test_missing_build_image_is_built_with_its_hash(self) -> None:
        st = stack(svc("app", build=True))
        assert replan(st, ObservedState()) == [Build("app", "demo-app", build_hash_of("app"))]

    def test_stale_build_hash_rebuilds_but_keeps_the_running_container(self) -> None:
        st = stack(svc("app", build=True))
        state = up(st)
        old = state.images[0]
        state = dataclasses.replace(state, images=(image("demo-app", id=old.id, build_hash="older"),))
        assert replan(st, state) == [Build("app", "demo-app", build_hash_of("app"))]

    def test_matching_build_hash_does_nothing(self) -> None:
        st = stack(svc("app", build=True))
        assert replan(st, up(st)) == []

    def test_unknown_build_hash_never_forces_a_rebuild(self) -> None:
        st = stack(svc("app", build=True))
        state = ObservedState(images=(image("demo-app", build_hash="whatever"),))
        assert kinds(plan(Desired(st), state, Policy())) == ["Create"]

    def test_unknown_build_hash_builds_a_missing_image(self) -> None:
        st = stack(svc("app", build=True))
        assert plan(Desired(st), ObservedState(), Policy()) == [Build("app", "demo-app", "")]

    def test_shared_image_is_pulled_once(self) -> None:
        st = stack(svc("a"), svc("b"))
        assert replan(st, ObservedState()) == [Pull("a", IMG)]

    def test_rebuilt_image_recreates_next_round(self) -> None:
        st = stack(svc("app", build=True))
        state = up(st)
        engine = FakeEngine(st, state)
        d = Desired(st, build_hashes=(("app", "new"),))
        engine.apply(plan(d, engine.state, Policy()))
        actions = plan(d, engine.state, Policy())
        assert kinds(actions) == ["Recreate"]
        assert actions[0].image_id == "sha256:demo-app-new"


# -- networks and volumes -------------------------------------------------------------------


class TestEnsure:
    def test_joined_networks_and_declared_and_used_volumes_are_ensured_first(self) -> None:
        st = stack(
            svc("web", networks=["front", "back"], volumes=["data"]),
            networks=(network("front"), network("back"), network("ext", external=True)),
            volumes=(VolumeSpec("logs"),),
        )
        actions = replan(st, ObservedState(images=(image(IMG),)))
        assert actions[:5] == [
            EnsureNetwork("demo_back"),
            EnsureNetwork("demo_front"),
            EnsureVolume("demo_data"),
            EnsureVolume("demo_logs"),
            actions[4],
        ]
        assert isinstance(actions[4], Create)

    def test_declared_networks_no_service_joins_are_not_created(self) -> None:
        # As compose: a network only exists for the services on it; host/none/service: need none.
        st = stack(svc("web", networks=["front"]), svc("mon", network_mode="host"),
                   networks=(network("front"), network("unused")))
        assert of(replan(st, ObservedState(images=(image(IMG),))), EnsureNetwork) == [EnsureNetwork("demo_front")]
        only_host = stack(svc("mon", network_mode="host"), networks=(network("unused"),))
        assert of(replan(only_host, ObservedState(images=(image(IMG),))), EnsureNetwork) == []

    def test_existing_and_external_are_not_ensured(self) -> None:
        st = stack(
            svc("web", networks=["front", "ext"]),
            networks=(network("front"), network("ext", external=True)),
            volumes=(VolumeSpec("x", external=True, external_name="shared"),),
        )
        state = ObservedState(images=(image(IMG),), networks=frozenset({"demo_front"}))
        assert kinds(replan(st, state)) == ["Create"]


# -- creating in dependency order ----------------------------------------------------------


class TestDependencies:
    def test_dependent_waits_for_a_dependency_without_container(self) -> None:
        st = stack(svc("web", deps=["db"]), svc("db"))
        actions = replan(st, ObservedState(images=(image(IMG),)))
        assert actions == [Create("db", f"sha256:{IMG}", actions[0].config_hash), Wait("web", "db", "service_started")]

    def test_dependent_is_created_when_dependency_runs(self) -> None:
        st = stack(svc("web", deps=["db"]), svc("db"))
        state = FakeEngine(st, ObservedState(images=(image(IMG),)))
        state.apply(replan(st, state.state))
        assert kinds(replan(st, state.state)) == ["Create"]

    def test_service_healthy_waits_while_starting(self) -> None:
        st = stack(svc("web", deps=[("db", "service_healthy")]), svc("db", health=True))
        state = up(st)
        db = state.containers_of("db")[0]
        web = state.containers_of("web")[0]
        starting = dataclasses.replace(state, containers=(dataclasses.replace(db, health="starting"),))
        assert replan(st, starting) == [Wait("web", "db", "service_healthy")]
        # an existing dependent keeps running meanwhile
        both = dataclasses.replace(state, containers=(dataclasses.replace(db, health="starting"), web))
        assert replan(st, both) == []

    def test_service_healthy_without_healthcheck_means_running(self) -> None:
        c = container("db", status="running", health=None)
        assert dependency_satisfied(c, "service_healthy")
        assert not dependency_satisfied(dataclasses.replace(c, status="exited"), "service_healthy")

    def test_service_completed_successfully(self) -> None:
        ok = container("init", status="exited", exit_code=0)
        assert dependency_satisfied(ok, "service_completed_successfully")
        assert not dependency_satisfied(dataclasses.replace(ok, exit_code=1), "service_completed_successfully")
        assert not dependency_satisfied(dataclasses.replace(ok, status="running"), "service_completed_successfully")
        assert not dependency_satisfied(None, "service_started")

    def test_oneshot_init_then_app(self) -> None:
        st = stack(
            svc("app", deps=[("init", "service_completed_successfully")]),
            svc("init", restart="no", oneshot=True),
        )
        state, rounds, plans = converge(desired(st))
        assert {c.service: c.status for c in state.containers} == {"init": "exited", "app": "running"}
        assert Wait("app", "init", "service_completed_successfully") in plans[1]

    def test_dependent_waits_while_dependency_changes_in_the_same_plan(self) -> None:
        st = stack(svc("db"), svc("web", deps=["db"]))
        state = up(st)
        changed = stack(svc("db", environment=(("V", "2"),)), svc("web", deps=["db"]))
        # web is up to date, nothing to do for it even though db is being recreated
        assert kinds(replan(changed, state)) == ["Recreate"]
        crashed = dataclasses.replace(
            state, containers=tuple(dataclasses.replace(c, status="exited", exit_code=1) for c in state.containers)
        )
        actions = replan(changed, crashed)
        assert kinds(actions) == ["Recreate", "Wait"]

    def test_service_order_is_topological_with_file_order_ties(self) -> None:
        st = stack(svc("c", deps=["b"]), svc("x"), svc("b", deps=["a"]), svc("a"), svc("n", net="x"))
        assert service_order(st) == ["x", "a", "b", "c", "n"]

    def test_service_order_survives_cycles(self) -> None:
        st = stack(svc("a", deps=["b"]), svc("b", deps=["a"]), svc("c"))
        assert sorted(service_order(st)) == ["a", "b", "c"]
        assert service_order(st) == service_order(st)


# -- existing containers ---------------------------------------------------------------------


class TestContainers:
    def test_converged_state_plans_nothing(self) -> None:
        st = stack(svc("db", health=True), svc("web", deps=[("db", "service_healthy")], build=True))
        assert replan(st, up(st)) == []

    def test_config_change_recreates_only_that_service(self) -> None:
        st = stack(svc("db"), svc("web", deps=["db"]))
        state = up(st)
        changed = stack(svc("db"), svc("web", deps=["db"], command=("serve", "--v2")))
        actions = replan(changed, state)
        assert kinds(actions) == ["Recreate"]
        assert actions[0].service == "web"
        assert actions[0].container_id == state.containers_of("web")[0].id

    def test_restart_policy_change_does_not_recreate(self) -> None:
        st = stack(svc("db"))
        state = up(st)
        assert replan(stack(svc("db", restart="on-failure", retries=3)), state) == []

    def test_recreated_network_parent_recreates_the_joined_service_next(self) -> None:
        st = stack(svc("vpn"), svc("app", net="vpn"), svc("other"))
        state = up(st)
        changed = stack(svc("vpn", environment=(("A", "1"),)), svc("app", net="vpn"), svc("other"))
        engine = FakeEngine(changed, state)
        first = replan(changed, engine.state)
        assert kinds(first) == ["Recreate"] and first[0].service == "vpn"
        engine.apply(first)
        second = replan(changed, engine.state)
        assert kinds(second) == ["Recreate"] and second[0].service == "app"
        engine.apply(second)
        assert replan(changed, engine.state) == []

    def test_volumes_from_target_missing_waits(self) -> None:
        st = stack(svc("data", restart="no", oneshot=True), svc("app", vfrom=["data"]))
        actions = replan(st, ObservedState(images=(image(IMG),)))
        assert kinds(actions) == ["Create", "Wait"]
        assert actions[1] == Wait("app", "data", "service_created")

    def test_network_parent_must_be_running(self) -> None:
        st = stack(svc("vpn"), svc("app", net="vpn"))
        state = up(st)
        vpn = state.containers_of("vpn")[0]
        down = dataclasses.replace(state, containers=(dataclasses.replace(vpn, status="exited", exit_code=1),))
        actions = replan(st, down)
        assert actions == [Start("vpn", vpn.id), Wait("app", "vpn", "service_started")]

    def test_ipc_parent_must_be_running_and_its_recreate_recreates_the_dependant(self) -> None:
        st = stack(svc("shm", ipc="shareable"), svc("app", ipc="service:shm"))
        fresh = replan(st, ObservedState(images=(image(IMG),)))
        assert kinds(fresh) == ["Create", "Wait"] and fresh[1] == Wait("app", "shm", "service_started")
        state = up(st)
        shm = state.containers_of("shm")[0]
        down = dataclasses.replace(state, containers=(dataclasses.replace(shm, status="exited", exit_code=1),))
        assert replan(st, down) == [Start("shm", shm.id), Wait("app", "shm", "service_started")]
        changed = stack(svc("shm", ipc="shareable", environment=(("A", "1"),)), svc("app", pid="service:shm",
                                                                                     ipc="service:shm"))
        engine = FakeEngine(changed, state)
        first = replan(changed, engine.state)
        assert [a.service for a in first if kinds([a]) == ["Recreate"]][0] == "shm"
        engine.apply(first)
        while actions := replan(changed, engine.state):
            engine.apply(actions)
        assert engine.state.containers_of("app")[0].id != state.containers_of("app")[0].id

    def test_restart_true_restarts_the_dependant_after_its_dependency_is_recreated(self) -> None:
        def build(env: str, restart: bool) -> StackSpec:
            return stack(svc("db", environment=(("V", env),)),
                         svc("app", deps=[], depends_on=(Dependency("db", restart=restart),)))

        for restart, expected in ((True, ["Restart"]), (False, [])):
            engine = FakeEngine(build("1", restart), up(build("1", restart)))
            app = engine.state.containers_of("app")[0]
            engine.now += 10
            changed = build("2", restart)
            engine.apply(replan(changed, engine.state))
            assert engine.state.containers_of("db")[0].created_at > (app.started_at or 0)
            engine.now += 10
            after = replan(changed, engine.state)
            assert kinds(after) == expected
            if restart:
                assert after[0] == Restart("app", app.id, reason="dependency db was recreated")
                engine.apply(after)
                assert replan(changed, engine.state) == []

    def test_an_optional_dependency_that_failed_is_skipped(self) -> None:
        for required, expected in ((True, ["Wait"]), (False, ["Create"])):
            st = stack(svc("init", restart="no"), svc("app", depends_on=(
                Dependency("init", "service_completed_successfully", required=required),)))
            init = up(st).containers_of("init")[0]
            failed = dataclasses.replace(init, status="exited", exit_code=1)
            state = ObservedState(containers=(failed,), images=(image(IMG),))
            assert kinds(replan(st, state)) == expected

    def test_duplicates_keep_running_matching_newest(self) -> None:
        st = stack(svc("web"))
        state = up(st)
        good = state.containers[0]
        dups = (
            dataclasses.replace(good, id="old", created_at=1.0),
            dataclasses.replace(good, id="stale", config_hash="x", created_at=9e9),
            dataclasses.replace(good, id="stopped", status="exited", created_at=9e9),
            good,
        )
        actions = replan(st, dataclasses.replace(state, containers=dups))
        assert sorted(actions, key=str) == sorted(
            [Remove("web", i, reason="duplicate") for i in ("old", "stale", "stopped")], key=str
        )

    def test_orphans_are_removed_unless_disabled(self) -> None:
        st = stack(svc("web"))
        state = up(st)
        state = dataclasses.replace(state, containers=state.containers + (container("gone"),))
        assert replan(st, state) == [Remove("gone", "c-gone", reason="orphan")]
        assert replan(st, state, Policy(remove_orphans=False)) == []

    def test_removing_containers_are_left_alone(self) -> None:
        st = stack(svc("web"))
        state = ObservedState(images=(image(IMG),), containers=(container("web", status="removing"),))
        assert kinds(replan(st, state)) == ["Create"]


class TestRestarts:
    CASES = [
        # (restart, retries, status, exit_code, restarts so far, expect Start)
        ("no", None, "exited", 1, 0, False),
        ("no", None, "exited", 0, 0, False),
        ("no", None, "created", None, 0, True),
        ("always", None, "exited", 0, 0, True),
        ("always", None, "exited", 137, 99, True),
        ("unless-stopped", None, "exited", 0, 0, True),
        ("on-failure", None, "exited", 0, 0, False),
        ("on-failure", None, "exited", 1, 50, True),
        ("on-failure", 3, "exited", 1, 2, True),
        ("on-failure", 3, "exited", 1, 3, False),
        ("on-failure", 3, "created", None, 3, True),
    ]

    def test_restart_policies(self) -> None:
        for mode, retries, status, code, restarts, expect in self.CASES:
            st = stack(svc("s", restart=mode, retries=retries))
            state = up(st)
            c = dataclasses.replace(state.containers[0], status=status, exit_code=code)
            policy = Policy(now=10.0, runtime=(("s", ServiceRuntime(restarts=restarts)),))
            actions = replan(st, dataclasses.replace(state, containers=(c,)), policy)
            assert actions == ([Start("s", c.id)] if expect else []), (mode, retries, status, code, restarts)

    def test_apply_starts_what_stopped_before_it_whatever_the_policy(self) -> None:
        # After a power cut or reboot `up` brings the whole stack back, like `docker compose up`;
        # an exit after the apply began follows the restart policy.
        for mode in ("no", "on-failure", "always"):
            st = stack(svc("s", restart=mode))
            state = up(st)
            c = dataclasses.replace(state.containers[0], status="exited", exit_code=0, finished_at=50.0)
            state = dataclasses.replace(state, containers=(c,))
            assert replan(st, state, Policy(now=10.0, applied_at=60.0)) == [Start("s", c.id)], mode
            after = [Start("s", c.id)] if mode == "always" else []
            assert replan(st, state, Policy(now=10.0, applied_at=40.0)) == after, mode
            assert replan(st, state, Policy(now=10.0)) == after, mode

    def test_held_service_is_not_started_until_backoff_ends(self) -> None:
        st = stack(svc("s"))
        state = up(st)
        c = dataclasses.replace(state.containers[0], status="exited", exit_code=1)
        state = dataclasses.replace(state, containers=(c,))
        held = (("s", ServiceRuntime(restarts=2, next_start_at=105.0)),)
        assert replan(st, state, Policy(now=100.0, runtime=held)) == []
        assert replan(st, state, Policy(now=105.0, runtime=held)) == [Start("s", c.id)]

    def test_held_service_without_container_is_not_created(self) -> None:
        st = stack(svc("s"))
        held = (("s", ServiceRuntime(next_start_at=5.0)),)
        assert replan(st, ObservedState(images=(image(IMG),)), Policy(now=1.0, runtime=held)) == []

    def test_held_service_is_still_recreated_on_config_change(self) -> None:
        st = stack(svc("s"))
        state = up(st)
        held = (("s", ServiceRuntime(next_start_at=5.0)),)
        assert kinds(replan(stack(svc("s", user="1000")), state, Policy(now=1.0, runtime=held))) == ["Recreate"]

    def test_dead_container_is_recreated(self) -> None:
        st = stack(svc("s"))
        state = up(st)
        c = dataclasses.replace(state.containers[0], status="dead")
        assert kinds(replan(st, dataclasses.replace(state, containers=(c,)))) == ["Recreate"]

    def test_unhealthy_is_restarted(self) -> None:
        st = stack(svc("s", health=True))
        state = up(st)
        c = dataclasses.replace(state.containers[0], health="unhealthy")
        sick = dataclasses.replace(state, containers=(c,))
        assert replan(st, sick) == [Restart("s", c.id, reason="unhealthy")]
        assert replan(st, sick, Policy(restart_unhealthy=False)) == []
        held = (("s", ServiceRuntime(next_start_at=5.0)),)
        assert replan(st, sick, Policy(now=1.0, runtime=held)) == []

    def test_stopped_dependent_waits_for_stopped_dependency(self) -> None:
        st = stack(svc("db"), svc("web", deps=["db"]))
        state = up(st)
        crashed = dataclasses.replace(
            state, containers=tuple(dataclasses.replace(c, status="exited", exit_code=1) for c in state.containers)
        )
        db = crashed.containers_of("db")[0]
        assert replan(st, crashed) == [Start("db", db.id), Wait("web", "db", "service_started")]


# -- down and stages -----------------------------------------------------------------------


class TestDownAndStages:
    def test_plan_down_removes_dependents_first_then_networks_and_volumes(self) -> None:
        st = stack(
            svc("db", volumes=["data"], networks=["back"]),
            svc("web", deps=["db"], networks=["back"]),
            networks=(network("back"), network("ext", external=True)),
        )
        state = up(st)
        state = dataclasses.replace(
            state, containers=state.containers + (container("gone"),), networks=state.networks | {"ext"}
        )
        actions = plan_down(state, st, remove_volumes=False)
        assert [a.service for a in of(actions, Remove)] == ["gone", "web", "db"]
        assert of(actions, RemoveNetwork) == [RemoveNetwork("demo_back")]
        assert of(actions, RemoveVolume) == []
        assert of(plan_down(state, st, remove_volumes=True), RemoveVolume) == [RemoveVolume("demo_data")]
        groups = stages(actions, st)
        assert [[type(a).__name__ + ":" + getattr(a, "service", "") for a in g] for g in groups] == [
            ["Remove:gone", "Remove:web"],
            ["Remove:db"],
            ["RemoveNetwork:"],
        ]
        after = FakeEngine(st, state).apply(actions)
        assert after.containers == () and after.networks == frozenset({"ext"})

    def test_plan_down_without_stack_removes_only_containers(self) -> None:
        state = ObservedState(containers=(container("a"), container("b")), networks=frozenset({"demo_default"}))
        assert kinds(plan_down(state, None, remove_volumes=True)) == ["Remove", "Remove"]

    def test_stages_order_kinds_and_drop_waits(self) -> None:
        st = stack(svc("a"), svc("b", deps=["a"]))
        actions: list[Action] = [
            Wait("b", "a", "service_started"),
            Create("b", "i", "h"),
            Create("a", "i", "h"),
            Pull("a", "x"),
            Remove("zz", "1"),
            EnsureVolume("v"),
        ]
        assert stages(actions, st) == [
            [EnsureVolume("v")],
            [Remove("zz", "1")],
            [Pull("a", "x")],
            [Create("a", "i", "h")],
            [Create("b", "i", "h")],
        ]
        assert stages(actions) == [
            [EnsureVolume("v")],
            [Remove("zz", "1")],
            [Pull("a", "x")],
            [Create("b", "i", "h"), Create("a", "i", "h")],
        ]


# -- convergence -----------------------------------------------------------------------------


class TestConvergence:
    def test_chain_boots_in_n_plus_two_rounds(self) -> None:
        for n in (1, 2, 5, 12):
            names = [f"s{i}" for i in range(n)]
            services = [svc(names[0], build=True, health=True)] + [
                svc(names[i], deps=[(names[i - 1], "service_healthy")], health=True) for i in range(1, n)
            ]
            st = stack(*reversed(services))
            state, rounds, _ = converge(desired(st))
            assert rounds <= n + 2 and len(state.containers) == n
            assert replan(st, state) == []

    def test_hundred_independent_services_boot_in_three_rounds(self) -> None:
        st = stack(*[svc(f"s{i}", networks=["default"]) for i in range(100)])
        state, rounds, plans = converge(desired(st))
        assert rounds == 2  # pull + ensure, then all creates in one stage
        assert len(stages(plans[1], st)) == 1


# -- properties over generated stacks and states ----------------------------------------------

CONDITIONS = ["service_started", "service_healthy", "service_completed_successfully"]
RESTARTS = ["no", "always", "on-failure", "unless-stopped"]
STATUSES = ["created", "running", "exited", "dead", "removing", "restarting", "paused"]


class Bits:
    """Choices read from one drawn byte string: one draw per object keeps generation fast.

    Hypothesis shrinks bytes towards zero, and choice 0 is always the simplest option.
    """

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def below(self, n: int) -> int:
        """A number in range(n)."""
        byte = self.data[self.pos % len(self.data)]
        self.pos += 1
        return byte % n

    def pick(self, options: list[T]) -> T:
        return options[self.below(len(options))]

    def one_in(self, n: int) -> bool:
        return self.below(n) == n - 1

    def subset(self, options: list[T], most: int) -> list[T]:
        picked = [o for o in options if self.one_in(3)]
        return picked[:most]


T = TypeVar("T")
BITS = st.binary(min_size=24, max_size=24)


@st.composite
def stacks(draw: st.DrawFn) -> StackSpec:
    n = draw(st.integers(1, 6))
    names = [f"s{i}" for i in range(n)]
    services = []
    oneshots: set[str] = set()
    for i, name in enumerate(names):
        b = Bits(draw(BITS))
        earlier = names[:i]
        oneshot = i < n - 1 and b.one_in(4)
        if oneshot:
            oneshots.add(name)
        # Satisfiable stacks only: a oneshot is waited for until it completes, others until up.
        dep_items = [
            (d, "service_completed_successfully" if d in oneshots else b.pick(CONDITIONS[:2]))
            for d in b.subset(earlier, 2)
        ]
        longrunning = [e for e in earlier if e not in oneshots]
        net = b.pick(longrunning) if longrunning and b.one_in(5) else None
        spec = svc(
            name,
            image=b.pick(["alpine:3.19", "busybox", "reg.io/x/y:2"]),
            deps=dep_items,
            restart="no" if oneshot else b.pick(RESTARTS),
            retries=b.pick([None, 1, 3]),
            build=b.one_in(2),
            health=b.one_in(2),
            oneshot=oneshot,
            net=net,
            vfrom=b.subset(earlier, 1),
            volumes=b.subset(["data", "logs"], 2),
            networks=b.subset(["front", "back"], 2),
        )
        chosen = b.pick([None, None, "kill-then-download", "delete-then-download"])
        if chosen is not None:
            spec = dataclasses.replace(spec, labels=(*spec.labels, (UPDATE_STRATEGY, chosen)))
        services.append(spec)
    order = draw(st.permutations(services))
    return stack(*order, networks=(network("front"),))


@st.composite
def worlds(draw: st.DrawFn) -> tuple[Desired, ObservedState, Policy]:
    """A stack, an arbitrary engine state (partly converged, partly broken) and a policy."""
    spec = draw(stacks())
    d = desired(spec)
    b = Bits(draw(st.binary(min_size=64, max_size=64)))
    # Start from a converged state for some services, then perturb it.
    base = ObservedState() if b.one_in(5) else up(spec)
    containers: list[ObservedContainer] = []
    for c in base.containers:
        if b.one_in(4):
            continue
        if b.one_in(3):
            c = dataclasses.replace(
                c,
                status=b.pick(STATUSES),  # type: ignore[arg-type]
                exit_code=b.pick([None, 0, 1, 137]),
                health=b.pick([None, "starting", "healthy", "unhealthy"]),  # type: ignore[arg-type]
            )
        if b.one_in(5):
            c = dataclasses.replace(c, config_hash="stale")
        containers.append(c)
        if b.one_in(6):
            containers.append(dataclasses.replace(c, id=c.id + "-dup", created_at=c.created_at + b.pick([-0.5, 0.5])))
    for i in range(b.below(3)):
        containers.append(container(f"orphan{i}", id=f"o{i}"))
    images = [i for i in base.images if not b.one_in(6)]
    if b.one_in(3):
        images = [dataclasses.replace(i, labels=()) if b.one_in(3) else i for i in images]
    held = b.subset(list(spec.service_names), 2)
    policy = Policy(
        now=2000.0,
        remove_orphans=not b.one_in(3),
        restart_unhealthy=not b.one_in(3),
        runtime=tuple((s, ServiceRuntime(restarts=1, next_start_at=3000.0)) for s in held),
    )
    state = ObservedState(
        containers=tuple(containers),
        images=tuple(images),
        networks=frozenset(n for n in base.networks if not b.one_in(3)),
        volumes=frozenset(base.volumes),
    )
    return d, state, policy


PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _kept(d: Desired, state: ObservedState, service: str) -> ObservedContainer | None:
    return kept_container(d, state, service)


@PROPS
@given(worlds())
def test_plan_is_deterministic(world: tuple[Desired, ObservedState, Policy]) -> None:
    d, state, policy = world
    first = plan(d, state, policy)
    assert first == plan(d, state, policy)
    shuffled = dataclasses.replace(state, containers=tuple(reversed(state.containers)))
    assert plan(d, shuffled, policy) == first


@PROPS
@given(worlds())
def test_plan_invariants(world: tuple[Desired, ObservedState, Policy]) -> None:
    d, state, policy = world
    spec = d.stack
    actions = plan(d, state, policy)
    names = set(spec.service_names)
    built_or_pulled = {a.service for a in actions if isinstance(a, Build | Pull)}
    changed = {a.service for a in actions if isinstance(a, CONTAINER_ACTIONS)}
    removed = {a.container_id for a in of(actions, Remove)}

    # at most one container action per service; none for services whose image is not ready
    assert len(changed) == len(of(actions, CONTAINER_ACTIONS))
    for a in of(actions, Create | Recreate):
        assert a.service not in built_or_pulled
        assert state.image(spec.image_ref(a.service)) is not None

    for a in of(actions, CONTAINER_ACTIONS):
        s = spec.service(a.service)
        # dependencies satisfied now, and not changing in this very plan
        if not isinstance(a, Restart):
            for dep in s.depends_on:
                kept = _kept(d, state, dep.service)
                assert dependency_satisfied(kept, dep.condition), (a, dep)
                assert dep.service not in changed
        # held services only get recreated (a config change), never created/started/restarted
        if policy.held(a.service):
            assert isinstance(a, Recreate)

    # delete-then-download removes a service's containers only while its new image is pending
    updating = {a.service for a in of(actions, Remove) if a.reason == "update"}
    pending_refs = {spec.image_ref(a.service) for a in actions if isinstance(a, Build | Pull)}
    for name in updating:
        assert spec.service(name).label(UPDATE_STRATEGY) == "delete-then-download"
        assert spec.image_ref(name) in pending_refs
    for a in of(actions, Stop):
        assert spec.service(a.service).label(UPDATE_STRATEGY) == "kill-then-download"
        assert spec.image_ref(a.service) in pending_refs

    for name in names:
        exp = expected_hash(d, state, name)
        kept = _kept(d, state, name)
        if kept is not None and name not in updating:
            # exactly the duplicates go; the kept one is never removed
            assert kept.id not in removed
            others = {c.id for c in state.containers_of(name) if c.status != "removing"} - {kept.id}
            assert others <= removed
            # an up-to-date container is never replaced
            # (a dead one is replaced by a fresh container with the same hash: it cannot start)
            if kept.config_hash == exp and kept.status != "dead":
                assert not any(isinstance(a, Recreate) and a.service == name for a in actions)

    orphans = {c.id for c in state.containers if c.service not in names}
    assert {a.container_id for a in of(actions, Remove) if a.reason == "orphan"} == (
        orphans if policy.remove_orphans else set()
    )
    assert all(a.service in names for a in of(actions, Remove) if a.reason != "orphan")

    # order: ensures, removals, images, container actions
    rank = {EnsureNetwork: 0, EnsureVolume: 0, Remove: 1, Stop: 1, RemoveImage: 1, Build: 2, Pull: 2}
    ranks = [rank.get(type(a), 3) for a in actions]
    assert ranks == sorted(ranks)

    # every stage of container actions is a set of mutually independent services
    for group in stages(actions, spec):
        svcs = {a.service for a in group if isinstance(a, CONTAINER_ACTIONS)}
        for name in svcs:
            s = spec.service(name)
            assert not ({d.service for d in s.depends_on} & svcs)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_converges_from_any_state(world: tuple[Desired, ObservedState, Policy]) -> None:
    d, state, policy = world
    policy = dataclasses.replace(policy, runtime=())  # backoff over: everything may start
    n = len(d.stack.services)
    final, rounds, plans = converge(d, state, policy)
    assert rounds <= n + 3  # +1 over a clean boot: a leading round of removals/rebuilds
    assert plan(d, final, policy) == plans[-1]  # stable: planning again changes nothing
    for name in d.stack.service_names:
        waits = [w for w in plans[-1] if isinstance(w, Wait) and w.service == name]
        kept = _kept(d, final, name)
        if not waits:
            assert kept is not None
            assert kept.config_hash == expected_hash(d, final, name)
            assert len([c for c in final.containers_of(name) if c.status != "removing"]) == 1


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stacks())
def test_clean_boot_converges_completely(spec: StackSpec) -> None:
    d = desired(spec)
    final, rounds, plans = converge(d)
    assert plans[-1] == []
    assert rounds <= len(spec.services) + 2
    for name in spec.service_names:
        (c,) = final.containers_of(name)
        assert c.config_hash == expected_hash(d, final, name)
    # a converged state is left alone, with or without orphan removal
    assert plan(d, final, Policy(remove_orphans=False)) == []
