"""Lifecycle hooks (post_start, pre_stop), ipc/pid ``service:NAME``, ``attach: false`` and
``depends_on.restart`` on a real engine."""

from __future__ import annotations

import textwrap

import pytest

from tests.integration.conftest import BASE_IMAGE, LOOP, Stack

pytestmark = pytest.mark.integration


def _compose(stack: Stack, body: str) -> None:
    (stack.dir / "compose.yaml").write_text(f"name: {stack.project}\n" + textwrap.dedent(body))


def _namespaces(stack: Stack, marker: str) -> None:
    _compose(stack, f"""
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 1s
            ipc: service:shm
            pid: service:shm
          shm:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name=marker)}"]
            stop_grace_period: 1s
            ipc: shareable
        """)


def test_ipc_and_pid_of_a_service_share_its_container_and_follow_its_recreate(stack: Stack) -> None:
    _namespaces(stack, "shm")
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    found = stack.containers()
    shm, app = found["shm"], found["app"]
    assert (app["HostConfig"]["IpcMode"], app["HostConfig"]["PidMode"]) == (f"container:{shm['Id']}",) * 2
    # One pid namespace: app sees shm's processes.
    ps = stack.client.containers.get(app["Id"]).exec_run(
        ["sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '"]).output.decode()
    assert "echo shm up" in ps

    _namespaces(stack, "shm2")
    again = stack.cli("apply", "--timeout", "60")
    assert again.returncode == 0, again.stdout + again.stderr
    renewed = stack.containers()
    assert renewed["shm"]["Id"] != shm["Id"] and renewed["app"]["Id"] != app["Id"]
    assert renewed["app"]["HostConfig"]["IpcMode"] == f"container:{renewed['shm']['Id']}"
    assert stack.cli("plan", "--json").stdout.strip() == "[]"


def _hooks(stack: Stack, post_start: str) -> None:
    _compose(stack, f"""
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 1s
            volumes: ["./out:/out"]
            post_start:
              - command: {post_start}
                environment: [WHO=hook]
                working_dir: /tmp
            pre_stop:
              - command: ["sh", "-c", "echo stopping > /out/pre_stop"]
        """)


def test_post_start_and_pre_stop_hooks_run_in_the_container(stack: Stack) -> None:
    (stack.dir / "out").mkdir()
    _hooks(stack, "[\"sh\", \"-c\", \"echo hello from $$WHO in $$(pwd); touch /out/post_start\"]")
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert "post_start hook: hello from hook in /tmp" in applied.stdout + applied.stderr
    assert (stack.dir / "out" / "post_start").exists()
    assert not (stack.dir / "out" / "pre_stop").exists()

    down = stack.cli("down")
    assert down.returncode == 0, down.stdout + down.stderr
    assert (stack.dir / "out" / "pre_stop").read_text() == "stopping\n"
    assert stack.containers() == {}


def test_a_failing_post_start_hook_fails_the_apply(stack: Stack) -> None:
    (stack.dir / "out").mkdir()
    _hooks(stack, "[\"sh\", \"-c\", \"echo broken >&2; exit 3\"]")
    applied = stack.cli("apply", "--timeout", "30")
    assert applied.returncode != 0
    text = applied.stdout + applied.stderr
    assert "post_start hook: broken" in text
    assert "The post_start hook 'sh -c echo broken >&2; exit 3' of service 'app' exited with status 3" in text


def test_attach_false_keeps_a_service_out_of_the_supervisor_log(stack: Stack) -> None:
    _compose(stack, f"""
        services:
          quiet:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='quiet')}"]
            stop_grace_period: 1s
            attach: false
          loud:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "sleep 0.5; {LOOP.format(name='loud')}"]
            stop_grace_period: 1s
            depends_on: [quiet]
        """)
    proc = stack.start_supervisor()
    assert stack.wait_applied()["ok"], stack.log_text()
    # loud starts after quiet and prints later: once its line is there, quiet's would be too.
    stack.wait("loud's output", lambda: "loud up" in stack.log_text())
    assert "quiet up" not in stack.log_text()
    assert "quiet up" in stack.cli("logs", "quiet").stdout   # `logs` still shows it, as docker compose
    assert stack.stop_supervisor(proc) == 0


def _restarting(stack: Stack, version: str) -> None:
    _compose(stack, f"""
        services:
          db:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='db')}"]
            stop_grace_period: 1s
            environment: [VERSION={version}]
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 1s
            depends_on:
              db: {{condition: service_started, restart: true}}
        """)


def test_depends_on_restart_restarts_the_dependant_after_an_update_of_its_dependency(stack: Stack) -> None:
    _restarting(stack, "1")
    assert stack.cli("apply", "--timeout", "60").returncode == 0
    before = stack.containers()
    _restarting(stack, "2")
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    after = stack.containers()
    assert after["db"]["Id"] != before["db"]["Id"]
    assert after["app"]["Id"] == before["app"]["Id"]   # restarted, not recreated
    assert after["app"]["State"]["StartedAt"] > after["db"]["Created"]
    assert stack.cli("plan", "--json").stdout.strip() == "[]"
