"""Health verdict and Prometheus text, from plain status documents (no engine, no server)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from runtime import metrics
from runtime.statusboard import StatusBoard


def svc(state: str = "running", **kw: Any) -> dict[str, Any]:
    return {"state": state, "restarts": 0, "last_exit": None, "oom_killed": False, "crash_looping": False,
            "waiting_for": [], **kw}


def doc(services: dict[str, dict[str, Any]] | None = None, *, ready: bool = True,
        last_apply: dict[str, Any] | None = None, disk: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "project": "demo", "release": "r1", "generation": 3, "updated_at": 1000.0,
        "supervisor": {"pid": 1, "started_at": 900.0, "ready": ready},
        "last_apply": last_apply if last_apply is not None else {
            "generation": 3, "ok": True, "error": None, "finished_at": 950.0,
            "report": {"db": {"build_seconds": 12.5}, "web": {"build_seconds": 0.0}}, "totals": {}, "removed": []},
        "services": services if services is not None else {"db": svc(), "web": svc()},
        "disk": disk if disk is not None else {"used": 600, "total": 1000, "free": 400},
    }


def families(text: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(text)}


# -- health -----------------------------------------------------------------------------------


def test_every_service_up_is_healthy() -> None:
    assert metrics.health(doc()) == metrics.Health(True, "ok")


def test_a_completed_job_counts_as_up() -> None:
    assert metrics.health(doc({"migrate": svc("completed", last_exit=0), "web": svc()})).ok


@pytest.mark.parametrize("state", ["crash-loop", "backoff", "exited", "starting", "unhealthy", "missing",
                                   "waiting", "created", "unknown"])
def test_a_service_not_up_is_unhealthy_and_named(state: str) -> None:
    verdict = metrics.health(doc({"db": svc(), "web": svc(state)}))
    assert not verdict.ok
    assert "service web is" in verdict.reason and "service db" not in verdict.reason


def test_the_reason_says_what_a_person_can_act_on() -> None:
    verdict = metrics.health(doc({"bad": svc("crash-loop", last_exit=1, crash_looping=True),
                                  "web": svc("waiting", waiting_for=["db (service_healthy)"])}))
    assert verdict.reason == ("service bad is crash looping (last exit code 1); "
                              "service web is waiting (waiting for db (service_healthy))")


def test_a_failed_apply_is_unhealthy_even_with_every_service_up() -> None:
    verdict = metrics.health(doc(last_apply={"generation": 4, "ok": False, "error": "build of db failed"}))
    assert not verdict.ok
    assert verdict.reason == "the last apply (generation 4) failed: build of db failed"


def test_an_engine_error_after_the_last_status_is_unhealthy_until_the_next_status() -> None:
    board = StatusBoard()
    board.report_engine_error("The Docker engine is unreachable.")
    assert board.current() is None
    board.publish(doc())
    board.report_engine_error("The Docker engine is unreachable.")
    verdict = metrics.health(board.current())
    assert verdict == metrics.Health(False, "the last reconcile failed: The Docker engine is unreachable.")
    board.publish(doc())
    assert metrics.health(board.current()).ok


def test_unhealthy_until_the_first_apply_finished() -> None:
    assert metrics.health(None) == metrics.Health(False, "the supervisor has not published a status yet")
    assert metrics.health({}).ok is False
    verdict = metrics.health(doc(ready=False))
    assert not verdict.ok and "first time" in verdict.reason


def test_a_running_service_after_a_crash_loop_is_up_again() -> None:
    # crash_looping stays set in the status until the streak resets; the state says it runs.
    assert metrics.health(doc({"bad": svc("running", crash_looping=True, last_exit=1)})).ok


# -- metrics ----------------------------------------------------------------------------------


def test_metrics_parse_with_the_expected_families_and_labels() -> None:
    d = doc({"db": svc(restarts=4, last_exit=137, oom_killed=True), "web": svc("crash-loop", restarts=7,
                                                                              last_exit=1, crash_looping=True)})
    fams = families(metrics.render(d, last_success_at=900.0))
    # The parser names counter families without their _total suffix.
    assert {"armstack_healthy", "armstack_supervisor_ready", "armstack_generation", "armstack_service_up",
            "armstack_service_restarts", "armstack_service_last_exit_code", "armstack_service_crash_looping",
            "armstack_service_probation", "armstack_service_rollbacks", "armstack_disk_used_bytes",
            "armstack_disk_total_bytes", "armstack_last_apply_success",
            "armstack_last_apply_success_timestamp_seconds", "armstack_last_apply_build_seconds"} <= set(fams)

    def values(name: str) -> dict[str, float]:
        return {s.labels.get("service", ""): s.value for s in fams[name].samples}

    assert fams["armstack_service_restarts"].type == "counter"
    assert values("armstack_service_restarts") == {"db": 4, "web": 7}
    assert [s.name for s in fams["armstack_service_restarts"].samples] == ["armstack_service_restarts_total"] * 2
    assert values("armstack_service_up") == {"db": 1, "web": 0}
    assert values("armstack_service_last_exit_code") == {"db": 137, "web": 1}
    assert values("armstack_service_crash_looping") == {"db": 0, "web": 1}
    assert values("armstack_service_probation") == {"db": 0, "web": 0}
    assert values("armstack_service_rollbacks") == {"db": 0, "web": 0}
    assert values("armstack_healthy") == {"": 0}
    assert values("armstack_supervisor_ready") == {"": 1}
    assert values("armstack_generation") == {"": 3}
    assert values("armstack_disk_used_bytes") == {"": 600}
    assert values("armstack_disk_total_bytes") == {"": 1000}
    assert values("armstack_last_apply_success") == {"": 1}
    assert values("armstack_last_apply_success_timestamp_seconds") == {"": 950.0}   # newer than 900
    assert values("armstack_last_apply_build_seconds") == {"db": 12.5, "web": 0.0}


def test_probation_and_rollbacks_fill_in_from_the_status_when_it_carries_them() -> None:
    fams = families(metrics.render(doc({"web": svc(probation=1, rollbacks=2)})))
    assert fams["armstack_service_probation"].samples[0].value == 1
    assert fams["armstack_service_rollbacks"].samples[0].value == 2


def test_unknown_values_are_left_out_not_made_up() -> None:
    d = doc({"web": svc()}, disk={"used": None, "total": None},
            last_apply={"generation": 2, "ok": False, "error": "x", "finished_at": 10.0, "report": {}})
    fams = families(metrics.render(d))
    assert fams["armstack_service_last_exit_code"].samples == []
    assert fams["armstack_disk_used_bytes"].samples == []
    assert fams["armstack_last_apply_success"].samples[0].value == 0
    assert fams["armstack_last_apply_success_timestamp_seconds"].samples == []   # a failure is no success time
    assert families(metrics.render(d, last_success_at=5.0))[
        "armstack_last_apply_success_timestamp_seconds"].samples[0].value == 5.0


def test_metrics_of_no_status_still_parse() -> None:
    fams = families(metrics.render(None))
    assert fams["armstack_healthy"].samples[0].value == 0
    assert fams["armstack_service_up"].samples == []


def test_label_values_are_escaped() -> None:
    text = metrics.render(doc({'we"i\\rd\nname': svc()}))
    fams = families(text)
    assert {s.labels["service"] for s in fams["armstack_service_up"].samples} == {'we"i\\rd\nname'}


def test_the_board_remembers_the_last_success_across_a_failed_apply() -> None:
    board = StatusBoard()
    assert board.current() is None and board.last_success_at is None
    board.publish(doc())
    assert board.last_success_at == 950.0
    failed = doc(last_apply={"generation": 4, "ok": False, "error": "x", "finished_at": 990.0, "report": {}})
    board.publish(failed)
    assert board.current() is failed
    assert board.last_success_at == 950.0
    assert board.wait_newer(0, timeout=0) == 2
