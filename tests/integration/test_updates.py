"""Selective, cache-reusing updates against the native engine, through ``armstack apply --json``.

The stack: ``app`` (built, several steps, the last one slow), ``side`` (joins app's network
namespace: must follow app), ``worker`` (built separately: must not be touched) and ``db``
(a plain image: must not be touched).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from harness.events import EventRecorder
from runtime.engine.reading import engine_time
from tests.integration.conftest import BASE_IMAGE, LOOP, ROOT, Stack

pytestmark = pytest.mark.integration


def write_app(directory: Path, version: str, *, delay: float = 2.0) -> None:
    (directory / "app").mkdir(parents=True, exist_ok=True)
    (directory / "app" / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_IMAGE}
        RUN seq 1 20000 > /numbers
        RUN sort -n -r /numbers > /sorted
        RUN echo step three > /three
        CMD ["sh", "-c", "{LOOP.format(name='app')}"]
        RUN sleep {delay} && echo {version} > /version
        """))


def write_updates_stack(directory: Path, project: str, *, version: str = "v1", strategy: str | None = None,
                        more_services: str = "", more_volumes: str = "", delay: float = 2.0) -> None:
    write_app(directory, version, delay=delay)
    (directory / "worker").mkdir(parents=True, exist_ok=True)
    (directory / "worker" / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM {BASE_IMAGE}
        RUN echo worker > /role
        CMD ["sh", "-c", "{LOOP.format(name='worker')}"]
        """))
    (directory / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {project}
        services:
          app:
            build: ./app
            restart: always
            stop_grace_period: 2s
            labels:
              io.armstack.update-strategy: {strategy or "download-then-kill"}
          side:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='side')}"]
            network_mode: "service:app"
            restart: always
            stop_grace_period: 2s
          worker:
            build: ./worker
            restart: always
            stop_grace_period: 2s
          db:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='db')}"]
            restart: always
            stop_grace_period: 2s
            volumes: ["dbdata:/data"]
        """) + more_services + "volumes:\n  dbdata: {}\n" + more_volumes)


def apply(stack: Stack, timeout: float = 120) -> dict[str, Any]:
    res = stack.cli("apply", "--json", "--timeout", "90", timeout=timeout)
    assert res.returncode == 0, res.stderr + res.stdout
    doc: dict[str, Any] = json.loads(res.stdout)
    assert doc["ok"], doc
    return doc


def ids(stack: Stack) -> dict[str, str]:
    return {name: attrs["Id"] for name, attrs in stack.containers().items()}


def touched(doc: dict[str, Any], key: str) -> set[str]:
    return {name for name, e in doc["report"].items() if e[key]}


def all_running(stack: Stack, names: tuple[str, ...] = ("app", "side", "worker", "db")) -> None:
    rows = stack.client.api.containers(all=True, filters={"label": f"io.armstack.stack={stack.project}"})
    services = sorted(r["Labels"]["io.armstack.service"] for r in rows)
    assert services == sorted(names), rows   # one container per service: no duplicate, no orphan
    assert all(r["State"] == "running" for r in rows), [(r["Names"], r["State"]) for r in rows]


def test_one_line_change_rebuilds_only_that_service_from_cache(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project)
    first = apply(stack)
    assert touched(first, "rebuilt") == {"app", "worker"}
    assert touched(first, "created") == {"app", "side", "worker", "db"}
    before = ids(stack)
    old_image = stack.client.images.get(f"{stack.project}-app").id

    write_app(stack.dir, "v2")
    doc = apply(stack)
    app = doc["report"]["app"]
    assert touched(doc, "rebuilt") == {"app"}
    # Steps before the changed last line come from the layer cache; FROM has no cache line.
    assert app["steps"] == 6 and app["cached"] == 4, app
    assert touched(doc, "recreated") == {"app", "side"}   # side shares app's network namespace
    after = ids(stack)
    assert after["worker"] == before["worker"] and after["db"] == before["db"]
    assert after["app"] != before["app"] and after["side"] != before["side"]
    # download-then-kill: the old container ran during the build, so only a short stop/start gap.
    assert 0 < app["downtime_seconds"] < app["build_seconds"], app
    assert doc["totals"]["rebuilt"] == 1 and doc["totals"]["recreated"] == 2 and doc["totals"]["cached"] == 4
    new_image = stack.client.images.get(f"{stack.project}-app")
    assert new_image.id != old_image
    assert stack.containers()["app"]["Image"] == new_image.id
    all_running(stack)


def test_apply_without_change_builds_and_restarts_nothing(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project)
    apply(stack)
    before = {name: (a["Id"], a["State"]["StartedAt"]) for name, a in stack.containers().items()}
    t0 = time.monotonic()
    doc = apply(stack)
    assert time.monotonic() - t0 < 60   # no build, no container touched: a generous bound
    assert not any(e["rebuilt"] or e["recreated"] or e["created"] for e in doc["report"].values()), doc
    assert doc["totals"] == {"rebuilt": 0, "recreated": 0, "created": 0, "removed": 0, "steps": 0, "cached": 0,
                             "build_seconds": 0.0, "downtime_seconds": 0.0}
    after = {name: (a["Id"], a["State"]["StartedAt"]) for name, a in stack.containers().items()}
    assert after == before   # same containers, not even restarted


@pytest.mark.parametrize("strategy", ["download-then-kill", "kill-then-download", "delete-then-download"])
def test_update_strategy_order(stack: Stack, strategy: str) -> None:
    write_updates_stack(stack.dir, stack.project, strategy=strategy, delay=3.0)
    apply(stack)
    old = stack.containers()["app"]
    old_image = old["Image"]
    recorder = EventRecorder(stack.client, {"container": old["Id"], "event": "die"})
    write_updates_stack(stack.dir, stack.project, strategy=strategy, version="v2", delay=3.0)
    doc = apply(stack)
    dies = [e["timeNano"] / 1e9 for e in recorder.stop()]
    app = doc["report"]["app"]
    assert app["strategy"] == strategy and app["rebuilt"] and app["recreated"], app

    # When did the old container stop, relative to the new image being finished?
    assert dies, f"no die event for {old['Id'][:12]}"
    stopped = min(dies)
    new_image = stack.client.images.get(f"{stack.project}-app")
    built = engine_time(new_image.attrs["Created"])
    assert built is not None
    if strategy == "download-then-kill":
        assert stopped > built, (stopped, built)
        assert app["downtime_seconds"] < 3.0, app
    else:
        assert stopped < built - 2.5, (stopped, built)   # stopped before the 3 s last step ran
        assert app["downtime_seconds"] >= 3.0, app
    # Ids only: inspecting every image races with other users of the engine removing theirs.
    old_image_exists = old_image in {i["Id"] for i in stack.client.api.images(all=True)}
    assert old_image_exists is (strategy != "delete-then-download")
    assert touched(doc, "recreated") == {"app", "side"}
    all_running(stack)


def test_adding_and_removing_a_service_touches_only_it(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project)
    apply(stack)
    before = ids(stack)
    cache = textwrap.indent(textwrap.dedent(f"""\
        cache:
          image: {BASE_IMAGE}
          command: ["sh", "-c", "{LOOP.format(name='cache')}"]
          restart: always
          stop_grace_period: 2s
          volumes: ["cachedata:/cache"]
        """), "  ")
    write_updates_stack(stack.dir, stack.project, more_services=cache, more_volumes="  cachedata: {}\n")
    doc = apply(stack)
    assert touched(doc, "created") == {"cache"} and not touched(doc, "recreated") and not touched(doc, "rebuilt")
    added = ids(stack)
    assert {k: v for k, v in added.items() if k != "cache"} == before
    all_running(stack, ("app", "side", "worker", "db", "cache"))

    write_updates_stack(stack.dir, stack.project)
    doc = apply(stack)
    assert doc["removed"] == ["cache"] and doc["totals"]["removed"] == 1
    assert not any(e["recreated"] or e["created"] for e in doc["report"].values()), doc
    assert ids(stack) == before
    # The removed service's named volume stays (data is never removed by an apply).
    assert stack.client.volumes.get(f"{stack.project}_cachedata") is not None


def test_interrupted_update_converges_without_duplicates_or_half_tagged_images(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project, strategy="kill-then-download", delay=20.0)
    apply(stack, timeout=180)
    old_image = stack.client.images.get(f"{stack.project}-app").id
    old_app = stack.containers()["app"]["Id"]

    write_updates_stack(stack.dir, stack.project, strategy="kill-then-download", version="v2", delay=20.0)
    cmd = [sys.executable, "-m", "runtime", "-f", str(stack.dir), "--data-dir", str(stack.data_dir), "--no-color",
           "apply", "--timeout", "90"]
    log = stack.dir / "interrupted.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=stack.env, stdout=out, stderr=subprocess.STDOUT)
    try:
        # Wait until the old container is stopped and the slow last step is running, then kill -9.
        stack.wait("the last build step to start", lambda: "sleep 20" in log.read_text(errors="replace"), 60)
        assert stack.containers()["app"]["State"]["Running"] is False
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    # The half-done build left the tag where it was.
    assert stack.client.images.get(f"{stack.project}-app").id == old_image
    assert stack.containers()["app"]["Id"] == old_app

    doc = apply(stack, timeout=180)
    assert doc["report"]["app"]["rebuilt"] and doc["report"]["app"]["cached"] >= 3
    new = stack.client.images.get(f"{stack.project}-app")
    assert new.id != old_image and new.labels["io.armstack.build-hash"]
    all_running(stack)
    assert stack.containers()["app"]["Image"] == new.id


def test_failed_build_under_kill_then_download_restarts_the_old_container(stack: Stack) -> None:
    write_updates_stack(stack.dir, stack.project, strategy="kill-then-download")
    apply(stack)
    before = ids(stack)
    dockerfile = stack.dir / "app" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().rstrip("\n").rsplit("\n", 1)[0] + "\nRUN false\n")
    res = stack.cli("apply", "--json", "--timeout", "60", timeout=120)
    assert res.returncode == 1, res.stderr + res.stdout
    doc = json.loads(res.stdout)
    assert not doc["ok"] and "app" in doc["error"], doc
    # The old container was stopped for the build; with the build failed it serves again.
    assert ids(stack) == before
    all_running(stack)


def test_an_inline_dockerfile_and_build_labels_reach_the_engine(stack: Stack) -> None:
    (stack.dir / "app").mkdir()
    (stack.dir / "app" / "greeting").write_text("built inline\n")
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          app:
            build:
              context: ./app
              dockerfile_inline: |
                FROM {BASE_IMAGE}
                COPY greeting /greeting
                CMD ["sh", "-c", "trap 'exit 0' TERM; cat /greeting; while true; do sleep 0.2; done"]
              labels:
                org.example.team: sensors
                io.armstack.image.stack: not-ours
            stop_grace_period: 2s
        """))
    done = stack.cli("apply", "--json")
    assert done.returncode == 0, done.stderr
    image = stack.client.images.get(f"{stack.project}-app")
    assert image.labels["org.example.team"] == "sensors"
    assert image.labels["io.armstack.image.stack"] == stack.project   # ownership labels win
    app = stack.containers()["app"]
    out = stack.client.containers.get(app["Id"]).exec_run(["cat", "/greeting"]).output.decode()
    assert out == "built inline\n"


def test_secrets_and_configs_reach_the_container_as_compose_mounts_them(stack: Stack) -> None:
    (stack.dir / "token.txt").write_text("from-a-file\n")
    (stack.dir / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {stack.project}
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 2s
            secrets:
              - token
              - source: password
                target: db
                uid: "1000"
                mode: 0400
            configs:
              - source: settings
                target: /etc/app.conf
        secrets:
          token:
            file: ./token.txt
          password:
            environment: APP_DB_PASSWORD
        configs:
          settings:
            content: "level=debug"
        """))
    stack.env["APP_DB_PASSWORD"] = "hunter2"
    done = stack.cli("apply", "--json")
    assert done.returncode == 0, done.stderr
    app = stack.client.containers.get(stack.containers()["app"]["Id"])

    def sh(cmd: str) -> str:
        return str(app.exec_run(["sh", "-c", cmd]).output.decode())

    assert sh("cat /run/secrets/token") == "from-a-file\n"
    assert sh("cat /run/secrets/db; echo; stat -c '%a %u' /run/secrets/db") == "hunter2\n400 1000\n"
    assert sh("cat /etc/app.conf; echo; stat -c '%a' /etc/app.conf") == "level=debug\n444\n"
    assert sh("touch /run/secrets/token 2>&1 || echo refused").strip().endswith("refused")   # read-only bind
    # The value is never printed: not in the apply output, not in the status.
    assert "hunter2" not in done.stdout + done.stderr
    assert "hunter2" not in json.dumps(stack.status())
