"""The supervisor against the native engine: keep-alive, backoff, adoption, reconcile, reload."""

from __future__ import annotations

import json
import os
import signal
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from harness.events import EventRecorder
from tests.integration.conftest import BASE_IMAGE, LOOP, Stack, write_stack


def _started(attrs: dict[str, Any]) -> str:
    return str(attrs["State"]["StartedAt"])


def _running_all(stack: Stack, names: tuple[str, ...] = ("db", "api", "web")) -> bool:
    services = stack.status().get("services") or {}
    return all((services.get(n) or {}).get("state") == "running" for n in names)


def test_sigkill_restarts_only_the_crashed_service(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    before = stack.containers()
    assert set(before) == {"db", "api", "web"}
    assert before["db"]["State"]["Health"]["Status"] == "healthy"

    t0 = time.monotonic()
    os.kill(before["api"]["State"]["Pid"], signal.SIGKILL)   # a real crash, not `docker kill`
    stack.wait("api to run again",
               lambda: (c := stack.containers().get("api")) and c["State"]["Running"]
               and _started(c) != _started(before["api"]), timeout=10, every=0.01)
    latency = time.monotonic() - t0
    print(f"crash -> running again: {latency:.3f} s")
    # The figure itself is bench/recovery.py's (measured side by side); here only a bound that a
    # loaded machine cannot break, far below the old recipe's 5-minute poll.
    assert latency < 10.0

    after = stack.containers()
    assert {s: a["Id"] for s, a in after.items()} == {s: a["Id"] for s, a in before.items()}
    assert _started(after["db"]) == _started(before["db"])
    assert _started(after["web"]) == _started(before["web"])
    stack.wait("the restart in the status", lambda: (stack.status()["services"]["api"]["restarts"] == 1
                                                    and stack.status()["services"]["api"]["last_exit"] == 137))
    # Container output reaches the supervisor's stdout with the service prefix.
    stack.wait("prefixed log lines", lambda: "api      | api up" in stack.log_text()
               and "db       | db starting" in stack.log_text())


def test_crash_loop_backs_off_with_growing_intervals(stack: Stack, engine: Any) -> None:
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          bad:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "echo failing; exit 1"]
            restart: always
        """))
    recorder = EventRecorder(engine, {"label": f"io.armstack.stack={stack.project}", "event": ["die", "start"]})
    stack.start_supervisor()
    stack.wait("a crash loop", lambda: (stack.status().get("services") or {}).get("bad", {}).get("crash_looping"),
               timeout=60, every=0.1)
    seq = [(e["Action"], e["timeNano"] / 1e9) for e in recorder.stop()]
    # die → next start = the backoff delay + the engine's start time. The schedule (first restart
    # at once, then 1 s, 2 s, 4 s) is a floor that load cannot shorten; above it, a loose bound
    # (the engine's own start time under load comes on top).
    waits = [start - die for (a, die), (b, start) in zip(seq, seq[1:], strict=False) if (a, b) == ("die", "start")]
    print("die → start:", [round(w, 2) for w in waits])
    assert len(waits) >= 4, seq
    for wait, floor in zip(waits, (0.0, 1.0, 2.0, 4.0), strict=False):
        assert floor - 0.05 <= wait <= floor + 10.0, waits
    status = stack.status()["services"]["bad"]
    assert status["state"] in ("crash-loop", "backoff")
    assert status["last_exit"] == 1


def test_new_supervisor_adopts_running_stack_without_restarts(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    first = stack.start_supervisor("--detach-on-exit")
    assert stack.wait_applied()["ok"]
    before = stack.containers()
    assert stack.stop_supervisor(first) == 0
    assert all(a["State"]["Running"] for a in stack.containers().values())   # left running

    stack.start_supervisor()
    assert stack.wait_applied(generation=2)["ok"], stack.log_text()
    after = stack.containers()
    for name in ("db", "api", "web"):
        assert after[name]["Id"] == before[name]["Id"]
        assert _started(after[name]) == _started(before[name])


def test_periodic_reconcile_recreates_a_container_removed_by_hand(stack: Stack, engine: Any) -> None:
    write_stack(stack.dir, stack.project)
    stack.start_supervisor("--reconcile-interval", "1")
    assert stack.wait_applied()["ok"]
    old = stack.containers()["web"]["Id"]
    engine.api.remove_container(old, force=True)
    stack.wait("web to be recreated",
               lambda: (c := stack.containers().get("web")) and c["Id"] != old and c["State"]["Running"])


def test_containers_run_by_hand_from_stack_images_are_not_the_stacks(stack: Stack, engine: Any) -> None:
    # A container inherits its image's labels: someone debugging with `docker run <stack image>`
    # must not have that container adopted as a duplicate and removed, nor shown in the stack.
    write_stack(stack.dir, stack.project)
    stack.start_supervisor("--reconcile-interval", "1")
    assert stack.wait_applied()["ok"]
    image = stack.containers()["db"]["Image"]
    by_hand = engine.containers.run(image, ["sleep", "300"], detach=True, labels={"io.armstack.test": "1"})
    try:
        gen = stack.status()["generation"]
        stack.cli("apply", "--timeout", "30")   # a full reconcile pass, and another by the timer
        stack.wait_applied(gen + 1)
        by_hand.reload()
        assert by_hand.status == "running"
        assert by_hand.id not in {c["Id"] for c in stack.containers().values()}
    finally:
        by_hand.remove(force=True)


def test_apply_hands_a_changed_file_to_the_running_supervisor(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    stack.start_supervisor()
    assert stack.wait_applied()["ok"]
    before = stack.containers()
    write_stack(stack.dir, stack.project, web_message="web v2")
    done = stack.cli("apply", "--json", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert '"recreated": true' in done.stdout
    after = stack.containers()
    assert after["web"]["Id"] != before["web"]["Id"]
    assert after["db"]["Id"] == before["db"]["Id"] and after["api"]["Id"] == before["api"]["Id"]
    assert stack.status()["last_apply"]["report"]["web"]["recreated"] is True
    stack.wait("the new web output", lambda: "web v2" in stack.log_text())


def test_sighup_with_a_broken_file_keeps_the_stack(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    proc = stack.start_supervisor()
    assert stack.wait_applied()["ok"]
    before = stack.containers()
    (stack.dir / "compose.yaml").write_text(f"name: {stack.project}\nservices:\n  web:\n    depends_on: [nope]\n")
    proc.send_signal(signal.SIGHUP)
    last = stack.wait_applied(generation=2)
    assert last["ok"] is False and "invalid" in last["error"]
    after = stack.containers()
    assert {s: a["Id"] for s, a in after.items()} == {s: a["Id"] for s, a in before.items()}
    assert all(a["State"]["Running"] for a in after.values())
    assert proc.poll() is None


def test_sigterm_stops_the_stack_and_exits_zero(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    proc = stack.start_supervisor()
    assert stack.wait_applied()["ok"]
    assert stack.stop_supervisor(proc) == 0
    assert not any(a["State"]["Running"] for a in stack.containers().values())
    assert "stack stopped" in stack.log_text()


def test_a_service_without_restart_is_kept_alive_and_a_finished_job_is_done(stack: Stack) -> None:
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          migrate:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "echo migrated"]
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 2s
            depends_on:
              migrate:
                condition: service_completed_successfully
          strict:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='strict')}"]
            restart: "no"
            stop_grace_period: 2s
        """))
    stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    services = stack.status()["services"]
    assert (services["migrate"]["state"], services["migrate"]["restart"]) == ("completed", "on-failure (default)")
    assert services["app"]["restart"] == "always (default)"
    before = stack.containers()

    os.kill(before["app"]["State"]["Pid"], signal.SIGKILL)      # no restart: in the file, still kept alive
    stack.wait("app to run again", lambda: (c := stack.containers().get("app")) and c["State"]["Running"]
               and _started(c) != _started(before["app"]))
    os.kill(before["strict"]["State"]["Pid"], signal.SIGKILL)   # an explicit "no" is honoured
    stack.wait("the supervisor to see strict exit",
               lambda: "service strict exited with code 137; restart policy 'no': left down" in stack.log_text())
    assert not stack.containers()["strict"]["State"]["Running"]
    assert stack.containers()["migrate"]["State"]["StartedAt"] == before["migrate"]["State"]["StartedAt"]


def test_concurrent_applies_never_report_each_others_result(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    write_stack(stack.dir, stack.project, web_message="web v2")
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: stack.cli("apply", "--json", "--timeout", "60", timeout=90), range(2)))
    codes = sorted(r.returncode for r in runs)
    assert codes in ([0, 0], [0, 4]), [(r.returncode, r.stderr) for r in runs]
    ids = [json.loads(r.stdout)["request_id"] for r in runs if r.returncode == 0]
    assert len(set(ids)) == len(ids) and all(ids)   # each success is its own request's result
    for r in runs:
        if r.returncode == 4:
            assert "was not applied" in r.stderr and "Traceback" not in r.stderr
    print("concurrent applies:", [(r.returncode, r.stderr.strip().splitlines()[-1]) for r in runs])


def test_a_bad_request_file_does_not_kill_the_supervisor(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    proc = stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    bad = stack.data_dir / stack.project / "request-bad.json"
    bad.write_text('{"file": "/x.yaml", "project": "p", "generation": [1], "id": "bad"}')
    proc.send_signal(signal.SIGHUP)
    stack.wait("the bad request to be dropped", lambda: "invalid apply request" in stack.log_text())
    assert not bad.exists() and proc.poll() is None
    done = stack.cli("apply", "--timeout", "30")   # and the channel still works
    assert done.returncode == 0, done.stderr
    assert proc.poll() is None


def test_apply_hands_its_profiles_to_the_running_supervisor(stack: Stack) -> None:
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 2s
          debug:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='debug')}"]
            profiles: [debug]
            stop_grace_period: 2s
        """))
    stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    assert set(stack.containers()) == {"app"}          # the debug profile is off
    done = stack.cli("--profile", "debug", "apply", "--json")
    assert done.returncode == 0, done.stderr
    assert set(stack.containers()) == {"app", "debug"}
    assert set(stack.status()["services"]) == {"app", "debug"}


def test_apply_reset_makes_the_running_supervisor_forget_every_service_history(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    proc = stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    before = stack.containers()
    os.kill(before["api"]["State"]["Pid"], signal.SIGKILL)   # a real crash
    stack.wait("the crash in the status", lambda: stack.status()["services"]["api"]["restarts"] == 1)
    done = stack.cli("apply", "--json", "--timeout", "30")   # a plain apply keeps the history
    assert done.returncode == 0, done.stderr
    assert stack.status()["services"]["api"]["restarts"] == 1

    done = stack.cli("apply", "--reset", "--json", "--timeout", "30")
    assert done.returncode == 0, done.stderr
    services = stack.status()["services"]
    assert {(s["restarts"], s["last_exit"]) for s in services.values()} == {(0, None)}
    state = json.loads((stack.status_path.parent / "state.json").read_text())
    assert all(r.get("restarts", 0) == 0 for r in state["services"].values())
    # The same supervisor, the same containers: nothing was started again for it.
    assert stack.status()["supervisor"]["pid"] == proc.pid
    assert {s: a["Id"] for s, a in stack.containers().items()} == {s: a["Id"] for s, a in before.items()}
    assert "forgetting the history of every service" in stack.log_text()
