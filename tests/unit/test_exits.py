"""What an exit means and which restart policy applies: runtime/exits.py, with plain data."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import cli
from runtime.compose.loader import load_text
from runtime.compose.model import Dependency, RestartPolicy, ServiceSpec, StackSpec
from runtime.exits import (
    default_restart_from,
    describe_restart,
    exit_kind,
    jobs,
    wants_restart,
    with_default_restart,
)
from runtime.observed import ObservedContainer, ObservedState, ServiceRuntime
from runtime.report import not_ready, service_state


def exited(code: int | None = 0, *, status: str = "exited", oom: bool = False) -> ObservedContainer:
    return ObservedContainer("c1", "p-s-1", "s", "h", "i", status, exit_code=code, oom_killed=oom)  # type: ignore[arg-type]


def stack_of(text: str) -> StackSpec:
    return load_text(text, source="/x/compose.yaml", workdir="/x", project="p", environ={}).stack


def test_a_service_without_restart_is_recorded_as_undeclared() -> None:
    st = stack_of("services:\n  web: {image: x}\n  job: {image: x, restart: 'no'}\n")
    assert st.service("web").restart.declared is False
    assert st.service("job").restart == RestartPolicy("no")


def test_undeclared_restart_defaults_to_always_and_says_so() -> None:
    st = with_default_restart(stack_of("services:\n  web: {image: x}\n  job: {image: x, restart: 'no'}\n"))
    assert st.service("web").restart == RestartPolicy("always", declared=False)
    assert describe_restart(st.service("web").restart) == "always (default)"
    assert st.service("job").restart == RestartPolicy("no")        # explicit "no" is honoured
    assert describe_restart(st.service("job").restart) == "no"


def test_strict_compose_semantics_on_request() -> None:
    st = with_default_restart(stack_of("services:\n  web: {image: x}\n"), "no")
    assert st.service("web").restart == RestartPolicy("no", declared=False)


def test_a_service_others_wait_to_complete_is_a_job() -> None:
    text = """
services:
  migrate: {image: x}
  app:
    image: x
    depends_on: {migrate: {condition: service_completed_successfully}}
"""
    st = stack_of(text)
    assert jobs(st) == {"migrate"}
    resolved = with_default_restart(st)
    assert resolved.service("migrate").restart.mode == "on-failure"   # done at exit 0, retried on failure
    assert resolved.service("app").restart.mode == "always"
    assert with_default_restart(st, "no").service("migrate").restart.mode == "no"


def test_a_declared_policy_wins_for_a_job_too() -> None:
    st = StackSpec("p", (ServiceSpec("j", image="x", restart=RestartPolicy("always")),
                         ServiceSpec("a", image="x", depends_on=(Dependency("j", "service_completed_successfully"),))))
    assert with_default_restart(st).service("j").restart == RestartPolicy("always")


@pytest.mark.parametrize(("flag", "env", "expected"), [
    (None, {}, "always"),
    (None, {"ARMSTACK_DEFAULT_RESTART": "no"}, "no"),
    ("on-failure", {"ARMSTACK_DEFAULT_RESTART": "no"}, "on-failure"),   # the flag wins
])
def test_default_restart_setting(flag: str | None, env: dict[str, str], expected: str) -> None:
    assert default_restart_from(env, flag) == expected


def test_a_bad_default_restart_names_where_it_came_from() -> None:
    with pytest.raises(ValueError, match="ARMSTACK_DEFAULT_RESTART.*'sometimes'.*always"):
        default_restart_from({"ARMSTACK_DEFAULT_RESTART": "sometimes"}, None)


@pytest.mark.parametrize(("container", "policy", "by_us", "kind"), [
    (exited(0), RestartPolicy("no"), False, "completed"),
    (exited(0), RestartPolicy("on-failure"), False, "completed"),
    (exited(0), RestartPolicy("always"), False, "crashed"),          # kept alive: an exit is an outage
    (exited(1), RestartPolicy("on-failure"), False, "crashed"),
    (exited(0, oom=True), RestartPolicy("no"), False, "crashed"),
    (exited(None, status="dead"), RestartPolicy("no"), False, "crashed"),
    (exited(None), RestartPolicy("no"), False, "crashed"),            # an exit code nobody saw is no success
    (exited(137), RestartPolicy("always"), True, "stopped"),
])
def test_exit_kind(container: ObservedContainer, policy: RestartPolicy, by_us: bool, kind: str) -> None:
    assert exit_kind(container, policy, stopped_by_us=by_us) == kind


@pytest.mark.parametrize(("container", "policy", "restarts", "wanted"), [
    (exited(0), RestartPolicy("always", declared=False), 0, True),
    (exited(0), RestartPolicy("no"), 0, False),
    (exited(0), RestartPolicy("on-failure"), 0, False),
    (exited(2), RestartPolicy("on-failure", 3), 2, True),
    (exited(2), RestartPolicy("on-failure", 3), 3, False),
    (exited(None, status="created"), RestartPolicy("no"), 0, True),
])
def test_wants_restart(container: ObservedContainer, policy: RestartPolicy, restarts: int, wanted: bool) -> None:
    assert wants_restart(container, policy, ServiceRuntime(restarts=restarts)) is wanted


def test_one_definition_of_completed_for_readiness_and_state() -> None:
    st = with_default_restart(StackSpec("p", (ServiceSpec("s", image="x"),)))
    job = with_default_restart(StackSpec("p", (ServiceSpec("s", image="x", restart=RestartPolicy("no")),)))
    obs = ObservedState(containers=(exited(0),))
    assert service_state(exited(0), job.service("s").restart) == "completed"
    assert not_ready(job, obs) == {}
    # Under the keep-alive default an exit 0 is not "done": the service is meant to run.
    assert service_state(exited(0), st.service("s").restart) == "exited"
    assert not_ready(st, obs) == {"s": "is exited (exit code 0)"}


def test_validate_says_which_services_get_the_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n  job: {image: x, restart: 'no'}\n")
    assert cli.main(["-f", str(tmp_path), "validate"]) == 0
    out = capsys.readouterr().out
    assert "web: no restart: in the file; supervised as always (default)" in out
    assert "job:" not in out
    assert cli.main(["-f", str(tmp_path), "--default-restart", "no", "validate"]) == 0
    assert "supervised as no (default)" in capsys.readouterr().out


def test_a_bad_default_restart_in_the_environment_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "compose.yaml").write_text("services:\n  web: {image: x}\n")
    monkeypatch.setenv("ARMSTACK_DEFAULT_RESTART", "sometimes")
    assert cli.main(["-f", str(tmp_path), "validate"]) == 2
    assert "ARMSTACK_DEFAULT_RESTART" in capsys.readouterr().err


def test_status_without_a_supervisor_counts_a_finished_job_as_up() -> None:
    # Regression: `armstack status` exited 1 for a finished one-shot job when no supervisor ran.
    st = with_default_restart(StackSpec("p", (
        ServiceSpec("web", image="x"), ServiceSpec("job", image="x", restart=RestartPolicy("no")))))
    obs = ObservedState(containers=(
        ObservedContainer("c1", "p-web-1", "web", "h", "i", "running"),
        ObservedContainer("c2", "p-job-1", "job", "h", "i", "exited", exit_code=0),
    ))
    status = cli.observed_status(st, obs)
    assert status.services["job"].state == "completed"
    assert status.services["web"].restart == "always (default)"
    assert cli.status_ok(status)
    failed_job = ObservedContainer("c2", "p-job-1", "job", "h", "i", "exited", exit_code=3)
    crashed = ObservedState(containers=(obs.containers[0], failed_job))
    assert not cli.status_ok(cli.observed_status(st, crashed))


def test_a_service_without_healthcheck_counts_as_up_once_it_stayed_running() -> None:
    from runtime.report import SETTLE_SECONDS, settled_at

    st = with_default_restart(StackSpec("p", (ServiceSpec("web", image="x"), ServiceSpec("db", image="x"))))
    web = ObservedContainer("c1", "p-web-1", "web", "h", "i", "running", started_at=100.0)
    db = ObservedContainer("c2", "p-db-1", "db", "h", "i", "running", health="healthy", started_at=100.5)
    obs = ObservedState(containers=(web, db))
    # Caught running right after its start: not up yet (it may be about to exit).
    assert not_ready(st, obs, now=100.2) == {"web": "is starting"}
    assert not_ready(st, obs, now=100.0 + SETTLE_SECONDS) == {}
    # The wall clock went back a day after the start: settled, not "starting" for a day.
    assert not_ready(st, obs, now=100.0 - 86_400) == {}
    assert not_ready(st, obs) == {}                 # without a clock: running is enough
    assert settled_at(st, obs) == 100.0 + SETTLE_SECONDS   # db proves itself by its healthcheck
    # One definition of "still settling" for readiness and for when to look again.
    from runtime.report import settles_at, settling

    assert settles_at(web) == 100.0 + SETTLE_SECONDS and settling(web, 100.2) and not settling(web, 101.0)
    unknown_start = ObservedContainer("c3", "p-web-1", "web", "h", "i", "running")
    assert [settles_at(c) for c in (db, exited(0), unknown_start)] == [None, None, None]
    assert not settling(web, None)
