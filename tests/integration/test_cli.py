"""The armstack CLI against the native engine: exit codes and one-shot commands."""

from __future__ import annotations

import json

from tests.integration.conftest import Stack, write_stack


def test_validate_ok_and_invalid(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    ok = stack.cli("validate")
    assert ok.returncode == 0, ok.stderr
    (stack.dir / "compose.yaml").write_text("services:\n  a:\n    ports: ['99999:80']\n  b:\n    image: x\n"
                                            "    depends_on: [missing]\n")
    bad = stack.cli("validate")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "missing" in bad.stderr and "ports" in bad.stderr


def test_plan_apply_status_down(stack: Stack) -> None:
    write_stack(stack.dir, stack.project)
    planned = stack.cli("plan")
    assert planned.returncode == 0
    assert any(line.startswith("Build service=db") for line in planned.stdout.splitlines())
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode == 0, applied.stderr
    assert "every service is up" in applied.stdout
    again = stack.cli("plan", "--json")
    assert json.loads(again.stdout) == []
    status = stack.cli("status", "--json")
    assert status.returncode == 0
    assert {s["state"] for s in json.loads(status.stdout)["services"].values()} == {"running"}
    down = stack.cli("down")
    assert down.returncode == 0, down.stderr
    assert stack.containers() == {}


def test_apply_fails_with_reason_for_a_service_that_exits(stack: Stack) -> None:
    (stack.dir / "compose.yaml").write_text(
        f"name: {stack.project}\nservices:\n  job:\n    image: armstack-test/base:latest\n"
        "    command: ['sh', '-c', 'exit 3']\n    restart: 'no'\n"   # left down: it will not come up
    )
    res = stack.cli("apply", "--timeout", "20")
    assert res.returncode == 1
    assert "job" in res.stderr and "3" in res.stderr
    assert "Traceback" not in res.stderr
