"""Health-gated updates as plain data: probation verdicts, rollback groups, known-bad releases,
the persisted state and how a boot converges from it (runtime.rollback, runtime.releases,
runtime.applies), with the planner on the in-memory engine. No Docker."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from runtime import rollback as rb
from runtime.actions import Build, Create, Pull, Recreate
from runtime.applies import ApplyChannel
from runtime.compose.model import ServiceSpec, StackSpec, VolumeSpec
from runtime.compose.source import StackSource
from runtime.errors import SettingsError
from runtime.observed import Desired, ObservedState
from runtime.planner import plan
from runtime.releases import ReleaseKeeper
from runtime.settings import RuntimeSettings
from runtime.state import PersistedState, StateStore
from runtime.tracker import ExitVerdict, ServiceTracker
from tests.unit import specs

# -- settings and labels ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "seconds"), [("60", 60.0), ("30s", 30.0), ("2m", 120.0), ("0", 0.0),
                                              ("1m30s", 90.0), ("500ms", 0.5)])
def test_probation_durations(raw: str, seconds: float) -> None:
    assert rb.parse_probation(raw) == seconds


@pytest.mark.parametrize("raw", ["-5", "soon", "", "5 parsecs"])
def test_a_bad_probation_is_refused(raw: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        rb.parse_probation(raw)


def test_the_label_overrides_the_default_and_a_bad_label_falls_back_with_a_sentence() -> None:
    assert rb.probation_seconds(specs.svc("web"), 60.0) == (60.0, None)
    assert rb.probation_seconds(specs.svc("web", labels=((rb.PROBATION_LABEL, "30s"),)), 60.0) == (30.0, None)
    assert rb.probation_seconds(specs.svc("web", labels=((rb.PROBATION_LABEL, "0"),)), 60.0) == (0.0, None)
    seconds, problem = rb.probation_seconds(specs.svc("web", labels=((rb.PROBATION_LABEL, "later"),)), 60.0)
    assert seconds == 60.0 and problem is not None
    assert "service web" in problem and rb.PROBATION_LABEL in problem and "'later'" in problem


def test_settings_flags_and_environment() -> None:
    assert RuntimeSettings.from_environ({}).probation == 60.0
    assert RuntimeSettings.from_environ({}).rollback == "service"
    env = RuntimeSettings.from_environ({"ARMSTACK_PROBATION": "10s", "ARMSTACK_ROLLBACK": "release"})
    assert (env.probation, env.rollback) == (10.0, "release")

    class Args:
        probation = "3s"
        rollback = "service"

    flags = RuntimeSettings.from_args(Args(), {"ARMSTACK_PROBATION": "10s", "ARMSTACK_ROLLBACK": "release"})
    assert (flags.probation, flags.rollback) == (3.0, "service")   # the flag wins
    with pytest.raises(SettingsError, match="ARMSTACK_PROBATION='soon'"):
        RuntimeSettings.from_environ({"ARMSTACK_PROBATION": "soon"})
    with pytest.raises(SettingsError, match="ARMSTACK_ROLLBACK='everything'.*service, release"):
        RuntimeSettings.from_environ({"ARMSTACK_ROLLBACK": "everything"})


# -- fingerprints -----------------------------------------------------------------------------


def test_fingerprints_follow_configuration_and_build_inputs_not_image_ids() -> None:
    st = specs.stack(specs.svc("web"), specs.svc("app", build=True))
    fp = rb.release_fingerprint(st, {"app": "bh1"})
    assert fp == rb.release_fingerprint(st, {"app": "bh1"})
    assert rb.release_fingerprint(st, {"app": "bh2"})["app"] != fp["app"]
    assert rb.release_fingerprint(st, {"app": "bh2"})["web"] == fp["web"]
    changed = specs.stack(specs.svc("web", environment=(("A", "1"),)), specs.svc("app", build=True))
    fp2 = rb.release_fingerprint(changed, {"app": "bh1"})
    assert fp2["web"] != fp["web"] and fp2["app"] == fp["app"]
    assert rb.changed_services(fp, fp2) == {"web"}
    assert rb.changed_services({}, fp) == {"web", "app"}
    assert rb.changed_services(fp, fp) == frozenset()


# -- probation verdicts -----------------------------------------------------------------------

P = rb.Probation("app", started_at=100.0, seconds=10.0)


@pytest.mark.parametrize(("facts", "now", "state", "reason"), [
    (rb.ServiceFacts("running"), 105.0, "pending", ""),
    (rb.ServiceFacts("running", "starting"), 105.0, "pending", ""),
    (rb.ServiceFacts("running"), 110.0, "passed", ""),
    (rb.ServiceFacts("running", "healthy"), 111.0, "passed", ""),
    (rb.ServiceFacts("running", "starting"), 110.0, "failed", "was not healthy after its 10 s probation"),
    (rb.ServiceFacts(None), 110.0, "failed", "was not running after its 10 s probation (state: none)"),
    (rb.ServiceFacts("created"), 112.0, "failed", "state: created"),
    (rb.ServiceFacts("running", "unhealthy"), 101.0, "failed", "turned unhealthy during its 10 s probation"),
    (rb.ServiceFacts("running", crashes=1, last_exit_code=3), 101.0, "failed", "exited with code 3 during"),
    (rb.ServiceFacts("exited", crashes=1, last_exit_code=137, oom_killed=True), 101.0, "failed", "OOM"),
    (rb.ServiceFacts("exited", crashes=5, last_exit_code=1, crash_looping=True), 101.0, "failed",
     "is crash looping (last exit code 1)"),
    (rb.ServiceFacts("exited", completed=True), 101.0, "passed", ""),   # a one-shot job that finished
    (rb.ServiceFacts("exited"), 101.0, "pending", ""),                  # stopped by the runtime: not news
])
def test_probation_verdicts(facts: rb.ServiceFacts, now: float, state: str, reason: str) -> None:
    verdict = rb.judge(P, facts, now)
    assert verdict.state == state
    assert reason in verdict.reason


# -- groups -----------------------------------------------------------------------------------


def chain() -> StackSpec:
    """db <- api <- web (depends_on), side joins web's network, files takes web's volumes,
    lone depends on nothing and nothing on it."""
    return specs.stack(
        specs.svc("db"), specs.svc("api", deps=["db"]), specs.svc("web", deps=["api"]),
        specs.svc("side", net="web"), specs.svc("files", vfrom=["web"]), specs.svc("lone"))


def test_the_group_is_what_the_release_changed_connected_to_the_failed_service() -> None:
    st = chain()
    everything = set(st.service_names)
    assert rb.rollback_group(st, ["web"], everything) == {"db", "api", "web", "side", "files"}
    assert rb.rollback_group(st, ["lone"], everything) == {"lone"}
    # Unchanged services keep their spec: they are not rolled back and do not link others.
    assert rb.rollback_group(st, ["web"], {"web", "side", "db"}) == {"web", "side"}
    assert rb.rollback_group(st, ["db"], {"web", "db"}) == {"db"}   # api unchanged breaks the chain
    assert rb.rollback_group(st, ["files"], {"files", "web", "lone"}) == {"files", "web"}
    # Dependencies count both ways: a dependency's failure takes its changed dependants along.
    assert rb.rollback_group(st, ["api"], {"api", "web"}) == {"api", "web"}
    assert rb.rollback_group(st, ["web", "lone"], everything) == everything


def test_release_mode_rolls_back_everything_the_release_changed() -> None:
    st = chain()
    assert rb.rollback_group(st, ["lone"], {"lone", "db"}, "release") == {"lone", "db"}
    assert rb.rollback_group(st, ["web"], set(), "release") == {"web"}


def test_the_rolled_back_stack_takes_the_group_from_the_previous_release() -> None:
    old = specs.stack(specs.svc("web", image="web:1"), specs.svc("api", image="api:1"),
                      volumes=(VolumeSpec("olddata"),))
    new = specs.stack(specs.svc("web", image="web:2"), specs.svc("api", image="api:2"),
                      specs.svc("extra", deps=["web"]), volumes=(VolumeSpec("newdata"),))
    back = rb.rolled_back_stack(new, old, {"web", "extra"})
    assert [s.name for s in back.services] == ["web", "api"]       # extra did not exist before: it goes
    assert back.service("web").image == "web:1" and back.service("api").image == "api:2"
    assert {v.name for v in back.volumes} == {"olddata", "newdata"}


def test_a_rollback_needs_every_previous_image_present() -> None:
    images = {"web": "sha256:w1", "api": "sha256:a1"}
    assert rb.missing_images({"web", "api"}, images, {"sha256:w1", "sha256:a1"}) == []
    assert rb.missing_images({"web", "api"}, images, {"sha256:w1"}) == ["api"]
    assert rb.missing_images({"new"}, images, {"sha256:w1"}) == ["new"]


# -- known-bad releases -----------------------------------------------------------------------


def test_a_release_is_known_bad_when_every_rolled_back_service_is_the_same_again() -> None:
    bad = rb.BadRelease({"web": "f2", "side": "s1"}, "rolled back: web turned unhealthy", 50.0)
    assert rb.known_bad([bad], {"web": "f2", "side": "s1", "db": "d9"}) == bad
    assert rb.known_bad([bad], {"web": "f3", "side": "s1"}) is None      # a different release
    assert rb.known_bad([bad], {"side": "s1"}) is None                     # web gone: different
    assert rb.known_bad([rb.BadRelease({}, "x", 1.0)], {"web": "f2"}) is None
    newer = dataclasses.replace(bad, at=60.0, reason="again")
    assert rb.known_bad([bad, newer], {"web": "f2", "side": "s1"}) == newer


def test_remembered_bad_releases_are_bounded_and_not_duplicated() -> None:
    bads: tuple[rb.BadRelease, ...] = ()
    for i in range(rb.MAX_BAD + 3):
        bads = rb.remember(bads, rb.BadRelease({"web": f"f{i}"}, "r", float(i)))
    assert len(bads) == rb.MAX_BAD and bads[-1].fingerprints == {"web": f"f{rb.MAX_BAD + 2}"}
    again = rb.remember(bads, rb.BadRelease({"web": f"f{rb.MAX_BAD + 2}"}, "later", 99.0))
    assert len(again) == rb.MAX_BAD and again[-1].reason == "later"


# -- persisted state and boots ----------------------------------------------------------------


def full_state() -> rb.RollbackState:
    prev = rb.PreviousRelease(StackSource(("/srv/v1/compose.yaml",), "demo", ("debug",)), {"web": "sha256:w1"},
                              {"web": "f1"})
    return rb.RollbackState(
        previous=prev, current=dataclasses.replace(prev, fingerprints={"web": "f2"}),
        probation=(rb.Probation("web", 10.0, 30.0, "f2"),), rolled_back=("web",),
        bad=(rb.BadRelease({"web": "f2"}, "rolled back: web turned unhealthy", 20.0),),
        last=rb.RollbackRecord(("web",), "web", "rolled back: web turned unhealthy", 20.0), totals={"web": 2})


def test_rollback_state_round_trips_through_the_state_file(tmp_path: Path) -> None:
    state = full_state()
    assert rb.RollbackState.from_json(state.to_json()) == state
    # A state file from before releases kept their source: files and profiles read back as one.
    older = {**state.previous.to_json(), "files": ["/srv/v1/compose.yaml"], "profiles": ["debug"]}  # type: ignore[union-attr]
    del older["source"]
    assert rb.PreviousRelease.from_json(older).source == StackSource(("/srv/v1/compose.yaml",), None, ("debug",))
    store = StateStore(tmp_path, "demo")
    store.save(PersistedState(release="r", generation=3, rollback=state))
    assert store.load().rollback == state
    assert oct(store.state_path.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("garbage", [None, 3, "x", [], {"probation": [{"service": "web"}]}, {"totals": {"w": "1"}},
                                     {"last": {"services": ["w"]}}, {"bad": [{"fingerprints": {}, "at": "soon"}]}])
def test_a_damaged_rollback_state_reads_as_none(garbage: Any) -> None:
    state = rb.RollbackState.from_json(garbage)
    assert state.probation == () and state.bad == () and state.last is None


def test_a_state_file_of_an_older_runtime_has_no_rollback_state(tmp_path: Path) -> None:
    old = {"version": 1, "release": "", "generation": 2, "services": {}}
    assert PersistedState.from_json(old).rollback == rb.RollbackState()


def test_boot_decisions() -> None:
    state = full_state()
    # Power cut after (or during) the rollback: the bad release comes back rolled back.
    assert rb.boot_decision(state, {"web": "f2"}) == rb.BootDecision("rolled-back", ("web",), state.bad[0].reason)
    # Power cut during probation: it starts again.
    on_probation = dataclasses.replace(state, bad=())
    assert rb.boot_decision(on_probation, {"web": "f2"}) == rb.BootDecision("resume", ("web",))
    # Any other release, or nothing to go back to: as given.
    assert rb.boot_decision(on_probation, {"web": "f3"}).kind == "as-given"
    assert rb.boot_decision(dataclasses.replace(state, previous=None), {"web": "f2"}).kind == "as-given"
    assert rb.boot_decision(rb.RollbackState(), {"web": "f2"}).kind == "as-given"


# -- the planner and pinned images ------------------------------------------------------------


def test_a_pinned_image_is_used_without_a_build_or_a_pull() -> None:
    st = specs.stack(specs.svc("app", build=True), specs.svc("web", image="web:2"))
    old_app, old_web = specs.image("other", id="sha256:app-v1"), specs.image("web:1", id="sha256:web-v1")
    state = ObservedState(images=(specs.image("demo-app", id="sha256:app-v2", build_hash="bh-app"), old_app, old_web))
    d = dataclasses.replace(specs.desired(st), pinned_images=(("app", "sha256:app-v1"), ("web", "sha256:web-v1")))
    actions = plan(d, state, specs.Policy())
    assert not [a for a in actions if isinstance(a, Build | Pull)]
    assert {a.service: a.image_id for a in actions if isinstance(a, Create)} == {
        "app": "sha256:app-v1", "web": "sha256:web-v1"}
    # A pinned image that is gone falls back to the file's image (a pull here).
    gone = dataclasses.replace(d, pinned_images=(("web", "sha256:nope"),))
    assert [a.service for a in plan(gone, state, specs.Policy()) if isinstance(a, Pull)] == ["web"]


# -- the keeper: update, failed probation, rollback, power cut --------------------------------


def web_stack(image: str, *extra: ServiceSpec) -> StackSpec:
    return specs.stack(specs.svc("db"), specs.svc("web", image=image, deps=["db"], health=True), *extra)


def engine_with(*refs: str) -> specs.FakeEngine:
    st = web_stack("web:1")
    eng = specs.FakeEngine(st)
    eng.state = dataclasses.replace(eng.state, images=tuple(specs.image(r) for r in refs))
    return eng


def converge(eng: specs.FakeEngine, d: Desired) -> list[Any]:
    done: list[Any] = []
    for _ in range(20):
        actions = [a for a in plan(d, eng.state, specs.Policy(now=eng.now)) if type(a).__name__ != "Wait"]
        if not actions:
            return done
        done += actions
        eng.apply(actions)
    raise AssertionError("no convergence")


def test_update_fails_probation_and_the_group_goes_back_without_a_build_or_pull() -> None:
    eng = engine_with("web:1", "web:2", "alpine:3.19")
    keeper = ReleaseKeeper(probation=10.0)
    v1 = Desired(web_stack("web:1"))
    assert keeper.begin(v1) is None
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/srv/v1/compose.yaml",)))
    assert keeper.state.current is not None and keeper.state.current.images["web"] == "sha256:web:1"
    db_before = eng.state.containers_of("db")[0].id

    v2 = Desired(web_stack("web:2"))
    assert keeper.begin(v2) is None
    assert keeper.state.previous == keeper.state.current and keeper.changed == {"web"}
    done = converge(eng, v2)
    assert [a.service for a in done if isinstance(a, Recreate)] == ["web"]
    keeper.replaced(v2.stack, "web", now=100.0)
    assert keeper.on_probation("web") and keeper.next_due() == 110.0
    tracker = ServiceTracker()
    assert keeper.check(v2, eng.state, tracker, 105.0) is None      # healthy, but the window is not over

    web = eng.state.containers_of("web")[0]
    eng.state = dataclasses.replace(eng.state, containers=tuple(
        dataclasses.replace(c, health="unhealthy") if c.id == web.id else c for c in eng.state.containers))
    back = keeper.check(v2, eng.state, tracker, 106.0)
    assert back is not None and back.services == {"web"}
    assert back.reason == "rolled back: web turned unhealthy during its 10 s probation"
    # Persisted before anything acts: the rolled-back group, the bad release, the count.
    assert keeper.state.rolled_back == ("web",) and keeper.rollbacks("web") == 1
    assert keeper.state.last is not None and keeper.state.last.reason == back.reason
    assert not keeper.on_probation()

    done = converge(eng, back.desired)
    assert not [a for a in done if isinstance(a, Build | Pull)]
    assert eng.state.containers_of("web")[0].image_id == "sha256:web:1"
    assert eng.state.containers_of("db")[0].id == db_before          # untouched
    keeper.replaced(back.desired.stack, "web", now=107.0)             # the rollback's own container
    assert not keeper.on_probation()

    # The same release again is refused; a different one clears the memory.
    assert keeper.begin(Desired(web_stack("web:2"))) == keeper.state.bad[0]
    assert keeper.begin(Desired(web_stack("web:3"))) is None and keeper.state.bad == ()


def test_a_crash_during_probation_fails_it_and_crashes_before_do_not() -> None:
    eng = engine_with("web:1", "web:2", "alpine:3.19")
    keeper = ReleaseKeeper(probation=10.0)
    v1 = Desired(web_stack("web:1"))
    keeper.begin(v1)
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/v1",)))
    v2 = Desired(web_stack("web:2"))
    keeper.begin(v2)
    converge(eng, v2)
    crash = ExitVerdict("web", "c", "crashed", exit_code=3)
    keeper.crashed(crash)                        # not on probation yet: not its crash
    keeper.replaced(v2.stack, "web", now=100.0)
    assert keeper.check(v2, eng.state, ServiceTracker(), 101.0) is None
    keeper.crashed(ExitVerdict("web", "c", "stopped"))   # stopped by the runtime: not a crash
    assert keeper.check(v2, eng.state, ServiceTracker(), 101.0) is None
    keeper.crashed(crash)
    back = keeper.check(v2, eng.state, ServiceTracker(), 102.0)
    assert back is not None and "exited with code 3" in back.reason


def test_probation_off_and_services_without_a_previous_release_are_not_judged() -> None:
    keeper = ReleaseKeeper(probation=0.0)
    v1 = Desired(web_stack("web:1"))
    keeper.begin(v1)
    keeper.replaced(v1.stack, "web", now=1.0)       # first release: nothing to go back to
    assert not keeper.on_probation()
    eng = engine_with("web:1", "alpine:3.19")
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/v1",)))
    keeper.begin(Desired(web_stack("web:2")))
    keeper.replaced(v1.stack, "web", now=1.0)       # probation 0: off
    assert not keeper.on_probation()
    labelled = web_stack("web:2")
    labelled = dataclasses.replace(labelled, services=tuple(
        dataclasses.replace(s, labels=((rb.PROBATION_LABEL, "5s"),)) if s.name == "web" else s
        for s in labelled.services))
    keeper.replaced(labelled, "web", now=1.0)      # the label turns it on for this service
    assert keeper.next_due() == 6.0


def v2_on_probation() -> tuple[Any, ReleaseKeeper, Desired, Desired]:
    """An engine that ran v1 (settled) and now runs v2 of web, replaced at t=100 with a 10 s probation."""
    eng = engine_with("web:1", "web:2", "alpine:3.19")
    keeper = ReleaseKeeper(probation=10.0)
    v1, v2 = Desired(web_stack("web:1")), Desired(web_stack("web:2"))
    keeper.begin(v1)
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/v1",)))
    keeper.begin(v2)
    converge(eng, v2)
    keeper.replaced(v2.stack, "web", now=100.0)
    return eng, keeper, v1, v2


def test_a_power_cut_mid_rollback_finishes_the_rollback_at_boot(tmp_path: Path) -> None:
    eng, keeper, v1, v2 = v2_on_probation()
    eng.state = dataclasses.replace(eng.state, containers=tuple(
        dataclasses.replace(c, health="unhealthy") if c.service == "web" else c for c in eng.state.containers))
    assert keeper.check(v2, eng.state, ServiceTracker(), 101.0) is not None
    store = StateStore(tmp_path, "demo")
    store.save(PersistedState(rollback=keeper.state))   # persisted; the power goes before the rollback acted

    # The files were replaced in place by v2: v1 comes back from the snapshot in the state file.
    after = ReleaseKeeper(probation=10.0)
    after.state = store.load().rollback
    desired, decision = after.boot(v2, now=500.0)        # the device boots with the v2 file
    assert decision.kind == "rolled-back" and decision.services == ("web",)
    assert desired.pinned_image("web") == "sha256:web:1" and desired.stack.service("web").image == "web:1"
    done = converge(eng, desired)
    assert not [a for a in done if isinstance(a, Build | Pull)]
    assert eng.state.containers_of("web")[0].image_id == "sha256:web:1"


def test_a_power_cut_during_probation_resumes_it_from_the_boot() -> None:
    v1, v2 = Desired(web_stack("web:1")), Desired(web_stack("web:2"))
    eng = engine_with("web:1", "web:2", "alpine:3.19")
    keeper = ReleaseKeeper(probation=10.0)
    keeper.begin(v1)
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/v1",)))
    keeper.begin(v2)
    keeper.replaced(v2.stack, "web", now=100.0)
    after = ReleaseKeeper(probation=10.0)
    after.state = rb.RollbackState.from_json(keeper.state.to_json())
    desired, decision = after.boot(v2, now=500.0)
    assert decision == rb.BootDecision("resume", ("web",)) and desired == v2
    assert after.next_due() == 510.0
    # A state without the previous release's stack: the file given is applied as it is, without probation.
    lost = ReleaseKeeper(probation=10.0)
    state = rb.RollbackState.from_json(keeper.state.to_json())
    assert state.previous is not None
    lost.state = dataclasses.replace(state, previous=dataclasses.replace(state.previous, stack={"project": 3}))
    assert lost.boot(v2, now=500.0)[1].kind == "as-given" and not lost.on_probation()


# -- the apply channel ------------------------------------------------------------------------


def test_an_apply_waits_for_probation_and_answers_rolled_back() -> None:
    lines: list[str] = []
    channel = ApplyChannel(lambda text, **kw: lines.append(text), timeout=300.0)
    st = specs.stack(specs.svc("web"))
    up = ObservedState(containers=(specs.container("web"),))
    tracker = ServiceTracker()
    channel.begin(2, "req-1", Path("/srv/compose.yaml"))
    assert channel.check(st, up, tracker, {}, on_probation=True) is None     # up, but not proven yet
    channel.note_rollback("rolled back: web turned unhealthy during its 3 s probation")
    down = ObservedState(containers=(specs.container("web", status="created"),))
    assert channel.check(st, down, tracker, {}, on_probation=False) is None  # the previous release comes up
    result = channel.check(st, up, tracker, {}, on_probation=False)
    assert result is not None and not result.ok and result.error is not None
    assert result.error.startswith("rolled back: web") and channel.answered["req-1"]["ok"] is False
    assert channel.ok is False and channel.pending is None

    channel.begin(3, None, Path("/srv/compose.yaml"))
    done = channel.check(st, up, tracker, {}, on_probation=False)
    assert done is not None and done.ok


# -- what the status, the CLI and the metrics say ---------------------------------------------


def test_status_and_metrics_carry_probation_and_rollbacks() -> None:
    from runtime import metrics
    from runtime.cli import status_lines
    from runtime.state import ServiceStatus, StatusDocument

    record = rb.RollbackRecord(("web", "side"), "web", "rolled back: web turned unhealthy during its 30 s probation",
                               1_700_000_000.0)
    doc = StatusDocument(project="demo", services={
        "web": ServiceStatus(state="running", rollbacks=2),
        "api": ServiceStatus(state="running", probation=True),
    }, rollback=record.to_json()).to_json()
    back = StatusDocument.from_json(doc)
    assert back.services["web"].rollbacks == 2 and back.services["api"].probation
    lines = status_lines(back)
    assert "on probation (new release not proven yet): api" in lines
    assert any(ln.startswith("last rollback at ") and "(web, side back on the previous release): rolled back: web "
               "turned unhealthy" in ln for ln in lines), lines
    text = metrics.render(doc)
    assert 'armstack_service_probation{service="api"} 1' in text
    assert 'armstack_service_probation{service="web"} 0' in text
    assert 'armstack_service_rollbacks_total{service="web"} 2' in text


# -- the supervisor's loop on the in-memory engine --------------------------------------------


def test_the_supervisor_rolls_back_a_release_that_crashes_on_probation(tmp_path: Path) -> None:
    import time

    from tests.unit.test_supervisor_parts import _FakeExecutor, _supervisor

    ex = _FakeExecutor(specs.stack(specs.svc("web", image="web:1"), specs.svc("db", image="db:1")))
    sup, out = _supervisor(tmp_path, ex, once=False)
    sup.releases.probation = 0.0    # off, but for web by its label
    sup._start_generation(1)
    assert sup._reconcile() is None and sup.last_apply is not None and sup.last_apply.ok

    (tmp_path / "compose.yaml").write_text("name: demo\nservices:\n  web:\n    image: web:2\n    labels:\n"
                                          "      io.armstack.probation: 5s\n  db:\n    image: db:1\n")
    sup._reload()
    assert sup._reconcile() is None
    web = ex.engine.state.containers_of("web")[0]
    db = ex.engine.state.containers_of("db")[0].id
    assert web.image_id == "sha256:web:2" and sup.releases.on_probation("web")
    assert sup.applies.pending is not None                     # the apply waits for the probation
    assert sup.status()["services"]["web"]["probation"] is True

    crashed = dataclasses.replace(web, status="exited", exit_code=3, finished_at=time.time())
    ex.engine.state = dataclasses.replace(ex.engine.state, containers=tuple(
        crashed if c.id == web.id else c for c in ex.engine.state.containers))
    assert sup._reconcile() is None
    assert ex.engine.state.containers_of("web")[0].image_id == "sha256:web:1"
    assert ex.engine.state.containers_of("db")[0].id == db
    last = sup.last_apply
    assert last is not None and not last.ok and last.error is not None
    assert last.error.startswith("rolled back: web exited with code 3 during its 5 s probation")
    assert "rolling back web to the previous release" in out.getvalue()
    persisted = StateStore(tmp_path / "data", "demo").load()
    assert persisted.rollback.rolled_back == ("web",) and persisted.rollback.totals == {"web": 1}
    status = sup.status()
    assert status["rollback"]["failed"] == "web" and status["services"]["web"]["rollbacks"] == 1

    # The same file again is refused without touching anything.
    before = ex.engine.state
    sup._reload()
    assert sup.last_apply is not None and sup.last_apply.error is not None
    assert sup.last_apply.error.startswith("refused: this release was rolled back before")
    assert sup._reconcile() is None and ex.engine.state == before


def test_an_apply_that_failed_without_a_rollback_does_not_become_the_release_to_go_back_to() -> None:
    eng = engine_with("web:1", "alpine:3.19")
    keeper = ReleaseKeeper(probation=10.0)
    v1 = Desired(web_stack("web:1"))
    keeper.begin(v1)
    converge(eng, v1)
    keeper.settled(v1.stack, eng.state, StackSource(("/v1",)))
    keeper.begin(Desired(web_stack("web:2")))        # say its pull failed: v1 still runs
    keeper.settled(web_stack("web:2"), eng.state, StackSource(("/v2",)), ok=False)
    assert keeper.state.current is not None and keeper.state.current.source == StackSource(("/v1",))


def test_a_bad_probation_flag_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from runtime import cli

    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: web:1\n")
    code = cli.main(["-f", str(tmp_path), "--data-dir", str(tmp_path / "data"), "apply", "--probation", "soon"])
    assert code == 2 and "--probation='soon'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as stop:
        cli.main(["-f", str(tmp_path), "up", "--rollback", "everything"])
    assert stop.value.code == 2


def test_a_proven_release_is_not_put_on_probation_again() -> None:
    eng, keeper, v1, v2 = v2_on_probation()
    assert keeper.check(v2, eng.state, ServiceTracker(), 111.0) is None and not keeper.on_probation()
    keeper.settled(v2.stack, eng.state, StackSource(("/v2",)))
    keeper.replaced(v2.stack, "web", now=200.0)    # its container died and was replaced later on
    assert not keeper.on_probation()
    keeper.begin(v2)                                 # a reboot with the same release
    keeper.replaced(v2.stack, "web", now=300.0)
    assert not keeper.on_probation()
    # Still v1 to go back to.
    assert keeper.state.previous is not None and keeper.state.previous.source == StackSource(("/v1",))
