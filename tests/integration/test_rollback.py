"""Health-gated updates against the native engine: a bad release is rolled back by itself.

The stack (tests/integration/test_updates.py's shape): ``app`` (built, with a healthcheck that
fails once ``/broken`` exists in its image), ``side`` (joins app's network namespace, so it
follows app both ways), ``worker`` (built) and ``db`` (a plain image) — the last two must keep
their containers through the update and the rollback. Releases differ only in app's build
context, written over the previous one in place, as a release shipped to a board is.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BASE_IMAGE, LOOP, ROOT, Stack
from tests.integration.test_updates import all_running, ids, write_updates_stack

pytestmark = pytest.mark.integration

PROBATION = "3s"
# Long enough for the healthcheck (1 s interval, 2 retries) to call v2 unhealthy within it even
# on a loaded machine: "unhealthy during" rather than "not healthy after" the window.
HEALTH_PROBATION = "8s"
HEALTHCHECK = """\
    environment: [RELEASE=v1]
    healthcheck:
      test: ["CMD", "sh", "-c", "test ! -f /broken"]
      interval: 1s
      timeout: 2s
      retries: 2
"""


def write_release(directory: Path, version: str, *, broken: bool = False, crash: bool = False) -> None:
    """App's build context for one release: healthy, unhealthy (``broken``) or crash looping."""
    cmd = 'echo app crashing; exit 3' if crash else LOOP.format(name="app")
    (directory / "app" / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_IMAGE}
        RUN echo {version} > /version
        {"RUN touch /broken" if broken else ""}
        CMD ["sh", "-c", "{cmd}"]
        """))


def write_stack(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project)
    text = (stack.dir / "compose.yaml").read_text()
    # app gets the healthcheck (side joins it, worker and db stay as they are).
    text = text.replace("      io.armstack.update-strategy: download-then-kill\n",
                        "      io.armstack.update-strategy: download-then-kill\n"
                        + HEALTHCHECK, 1)
    (stack.dir / "compose.yaml").write_text(text)
    write_release(stack.dir, "v1")


def set_release_env(stack: Stack, version: str) -> None:
    """A configuration change too, in the compose file, replaced in place like the build context."""
    path = stack.dir / "compose.yaml"
    text = path.read_text()
    start = text.index("RELEASE=")
    path.write_text(text[:start] + f"RELEASE={version}" + text[text.index("]", start):])


def env_of(stack: Stack, service: str) -> list[str]:
    return list(stack.containers()[service]["Config"]["Env"])


def apply(stack: Stack, probation: str = PROBATION) -> tuple[int, dict[str, Any], str]:
    res = stack.cli("apply", "--json", "--timeout", "90", "--probation", probation, timeout=150)
    doc = json.loads(res.stdout) if res.stdout.strip() else {}
    return res.returncode, doc, res.stderr


def image_of(stack: Stack, service: str) -> str:
    return str(stack.containers()[service]["Image"])


def builds(log: str) -> list[str]:
    return [line for line in log.splitlines() if "building " in line or "pulling " in line]


def test_an_unhealthy_release_is_rolled_back_and_not_retried(stack: Stack) -> None:
    write_stack(stack)
    code, first, err = apply(stack)
    assert code == 0, err
    v1 = ids(stack)
    v1_image = image_of(stack, "app")

    write_release(stack.dir, "v2", broken=True)
    set_release_env(stack, "v2")
    code, doc, err = apply(stack, HEALTH_PROBATION)
    assert code == 1, err
    assert doc["ok"] is False and doc["error"].startswith("rolled back: app turned unhealthy"), doc
    assert "apply failed: rolled back: app turned unhealthy" in err
    assert len(builds(err)) == 1, builds(err)        # the v2 build; the rollback neither builds nor pulls
    after = ids(stack)
    assert image_of(stack, "app") == v1_image        # app runs the v1 image again, with v1's configuration...
    assert "RELEASE=v1" in env_of(stack, "app")
    assert after["app"] != v1["app"] and after["side"] != v1["side"]
    assert after["worker"] == v1["worker"] and after["db"] == v1["db"]   # ...and the rest was never touched
    all_running(stack)
    status = stack.status()
    # side is in the group when it was on probation itself by then; it follows app's container anyway.
    assert status["rollback"]["failed"] == "app" and "app" in status["rollback"]["services"]
    assert set(status["rollback"]["services"]) <= {"app", "side"}
    assert "unhealthy" in status["rollback"]["reason"]
    assert status["services"]["app"]["rollbacks"] == 1 and not status["services"]["app"]["probation"]
    assert status["services"]["app"]["health"] == "healthy"
    shown = stack.cli("status")
    assert "rolled back: app turned unhealthy" in shown.stdout, shown.stdout

    # The same release again: refused at once, no build, nothing recreated.
    code, doc, err = apply(stack)
    assert code == 1 and doc["error"].startswith("refused: this release was rolled back before"), (doc, err)
    assert builds(err) == [] and ids(stack) == after

    # A different, good release is applied as usual and passes its probation.
    write_release(stack.dir, "v3")
    set_release_env(stack, "v3")
    code, doc, err = apply(stack, HEALTH_PROBATION)
    assert code == 0, err
    assert "passed its 8 s probation" in err
    assert image_of(stack, "app") != v1_image and "RELEASE=v3" in env_of(stack, "app")
    assert ids(stack)["worker"] == v1["worker"]
    assert stack.status()["services"]["app"]["rollbacks"] == 1


def test_a_crash_looping_release_handed_to_the_supervisor_is_rolled_back(stack: Stack) -> None:
    write_stack(stack)
    proc = stack.start_supervisor("--probation", PROBATION)
    stack.wait_applied(1, timeout=120)
    v1 = ids(stack)
    v1_image = image_of(stack, "app")

    write_release(stack.dir, "v2", crash=True)
    res = stack.cli("apply", "--timeout", "90", timeout=150)
    assert res.returncode == 1, res.stderr + res.stdout
    assert "apply failed: rolled back: app exited with code 3" in res.stderr, res.stderr
    stack.wait("app back on v1", lambda: image_of(stack, "app") == v1_image and all_running_ok(stack), 60)
    after = ids(stack)
    assert after["worker"] == v1["worker"] and after["db"] == v1["db"]
    log = stack.log_text()
    assert "rolled back: app exited with code 3" in log and "rolling back app" in log
    assert len(builds(log)) == 3, builds(log)        # worker and app at boot, app v2; none for the rollback

    # The supervisor does not retry the bad release: a reconcile later nothing changed.
    res = stack.cli("apply", "--timeout", "60", timeout=90)
    assert res.returncode == 1 and "refused: this release was rolled back before" in res.stderr, res.stderr
    assert ids(stack) == after and len(builds(stack.log_text())) == 3
    assert stack.stop_supervisor(proc) == 0


def all_running_ok(stack: Stack) -> bool:
    try:
        all_running(stack)
    except AssertionError:
        return False
    return True


def test_a_supervisor_killed_during_probation_resumes_it_and_rolls_back(stack: Stack) -> None:
    write_stack(stack)
    proc = stack.start_supervisor("--probation", "30s")
    stack.wait_applied(1, timeout=120)
    v1 = ids(stack)
    v1_image = image_of(stack, "app")

    # v2 runs (and is healthy) for a while, then exits: the supervisor is killed before that.
    write_release(stack.dir, "v2", crash=True)
    dockerfile = stack.dir / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("echo app crashing;", "sleep 10; echo app crashing;"))
    cmd = [sys.executable, "-m", "runtime", "-f", str(stack.dir), "--data-dir", str(stack.data_dir), "--no-color",
           "apply", "--timeout", "120"]
    client = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stack.wait("app on probation", lambda: (stack.status().get("services") or {}).get("app", {}).get("probation"),
                   90)
        assert stack.stop_supervisor(proc, signal.SIGKILL) == -signal.SIGKILL    # the power goes
        _, err = client.communicate(timeout=60)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 4, err   # its supervisor died before answering

    stack.start_supervisor("--probation", "30s")   # the device boots with v2's files
    last = stack.wait_applied(3, timeout=120)
    assert last["ok"] is False and last["error"].startswith("rolled back: app exited with code 3"), last
    log = stack.log_text()
    assert any(line.startswith("armstack | probation of app") and line.endswith("starts again after the restart")
               for line in log.splitlines()), log
    assert image_of(stack, "app") == v1_image and all_running_ok(stack)
    after = ids(stack)
    assert after["worker"] == v1["worker"] and after["db"] == v1["db"]
    assert len(builds(log)) == 3, builds(log)        # boot's two, v2's one: the rollback built nothing
