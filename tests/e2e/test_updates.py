"""Selective, cache-reusing updates on an emulated arm64 device (stack ``stacks/updates``).

A one-line change at the end of ``api/Dockerfile`` must rebuild only api, every earlier step
from the layer cache, while worker and cache keep their containers; an apply without change
builds and restarts nothing; a power cut in the middle of an update's build converges after
the device comes back, with one container per service and no half-built image tagged.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness.device import EmulatedDevice
from harness.errors import DeployError
from harness.report import UpdateReport
from harness.waits import wait_for
from runtime.engine.reading import engine_time

LAST_LINE = "RUN echo v1 > /app/version"


def copy_stack(stacks: Path, tmp_path: Path) -> Path:
    target = tmp_path / "updates"
    shutil.copytree(stacks / "updates", target)
    return target


def set_last_line(stack: Path, line: str) -> None:
    """Replace the last line of api's Dockerfile (the one-line change of the tests)."""
    dockerfile = stack / "api" / "Dockerfile"
    lines = dockerfile.read_text().rstrip("\n").splitlines()
    dockerfile.write_text("\n".join([*lines[:-1], line]) + "\n")


def add_label(stack: Path, service: str, label: str, value: str) -> None:
    """Give a built service of the stack's compose file a label (its first)."""
    compose = stack / "compose.yaml"
    text = compose.read_text()
    anchor = f"  {service}:\n    build: ./{service}\n"
    assert anchor in text
    compose.write_text(text.replace(anchor, anchor + f"    labels:\n      {label}: {value}\n"))


def set_strategy(stack: Path, service: str, strategy: str) -> None:
    add_label(stack, service, "io.armstack.update-strategy", strategy)


def container_ids(device: EmulatedDevice) -> dict[str, str]:
    """service -> container id of every container the stack has on the device (all states)."""
    out: dict[str, str] = {}
    for c in device.engine.containers.list(all=True, filters={"label": "io.armstack.stack=updates"}):
        service = c.labels["io.armstack.service"]
        assert service not in out, f"two containers for service {service}"
        out[service] = c.id
    return out


def all_running(device: EmulatedDevice) -> bool:
    cs = device.engine.containers.list(all=True, filters={"label": "io.armstack.stack=updates"})
    return sorted(c.labels["io.armstack.service"] for c in cs) == ["api", "cache", "worker"] and all(
        c.status == "running" for c in cs)


def version(device: EmulatedDevice) -> str:
    return device.exec("api", "cat /app/version").output.strip()


def started_at(device: EmulatedDevice) -> dict[str, str]:
    return {c.labels["io.armstack.service"]: c.attrs["State"]["StartedAt"]
            for c in device.engine.containers.list(all=True, filters={"label": "io.armstack.stack=updates"})}


@pytest.mark.device(build_cache=False)   # these tests measure builds from nothing
@pytest.mark.quick
def test_one_line_change_rebuilds_only_that_service_from_cache(arm_device: EmulatedDevice, stacks: Path,
                                                                tmp_path: Path) -> None:
    stack = copy_stack(stacks, tmp_path)
    cold = arm_device.deploy(stack)
    assert isinstance(cold, UpdateReport) and cold.ok
    assert sorted(cold.rebuilt) == ["api", "worker"]
    wait_for(lambda: all_running(arm_device), arm_device.timeout(30), "the stack to run")
    before = container_ids(arm_device)

    set_last_line(stack, "RUN echo v2 > /app/version")
    since = int(time.time()) - 1
    warm = arm_device.deploy(stack)
    api = warm.service("api")
    assert warm.rebuilt == ["api"], warm
    # FROM has no cache line; everything else before the changed last line is cached.
    assert api.steps == 8 and api.cached == api.steps - 2, api
    assert warm.recreated == ["api"] and sorted(warm.untouched) == ["cache", "worker"]
    # Download, then kill: the old api ran on until its new image was made. Event order, not
    # durations: a one-step rebuild now takes about as long as a restart.
    built = engine_time(arm_device.container("api").image.attrs["Created"])
    died = [e["timeNano"] / 1e9 for e in arm_device.engine.events(
        since=since, until=int(time.time()) + 1, decode=True, filters={"container": before["api"], "event": "die"})]
    assert built is not None and died and min(died) >= built, (built, died)
    assert warm["report"]["api"]["rebuilt"] is True    # the raw JSON view still works
    after = container_ids(arm_device)
    assert after["worker"] == before["worker"] and after["cache"] == before["cache"]
    assert after["api"] != before["api"]
    wait_for(lambda: version(arm_device) == "v2", arm_device.timeout(10), "api to serve v2")
    # The warm rebuild costs a fraction of the cold one.
    assert api.build_seconds < 0.5 * cold.service("api").build_seconds, (api, cold.service("api"))

    # No change at all: nothing built, nothing restarted.
    started = started_at(arm_device)
    again = arm_device.deploy(stack)
    assert again.ok and not again.rebuilt and not again.recreated and not again.created, again
    assert again.totals["build_seconds"] == 0 and again.totals["downtime_seconds"] == 0
    assert container_ids(arm_device) == after and started_at(arm_device) == started


@pytest.mark.device(build_cache=False)   # these tests measure builds from nothing
@pytest.mark.full
def test_power_cut_during_an_update_build_converges(arm_device: EmulatedDevice, stacks: Path,
                                                   tmp_path: Path) -> None:
    stack = copy_stack(stacks, tmp_path)
    set_strategy(stack, "api", "kill-then-download")   # the old api is stopped before the build
    arm_device.deploy(stack)
    wait_for(lambda: all_running(arm_device), arm_device.timeout(30), "the stack to run")
    before = container_ids(arm_device)
    generation = int((arm_device.status() or {}).get("generation") or 0)
    images_before = {i.id for i in arm_device.engine.images.list(name="updates-api")}

    set_last_line(stack, "RUN sleep 30 && echo v3 > /app/version")
    errors: list[BaseException] = []

    def deploy() -> None:
        try:
            arm_device.deploy(stack)
        except BaseException as exc:  # the runtime dies under it: expected
            errors.append(exc)

    thread = threading.Thread(target=deploy, daemon=True)
    thread.start()
    wait_for(lambda: any("sleep 30" in ln for ln in arm_device.logs("api")), arm_device.timeout(60),
             "the slow last build step to start", describe=lambda: "\n".join(arm_device.logs()[-20:]))
    # kill-then-download stopped api before its build started.
    api = wait_for(lambda: (c := arm_device.container("api", running=False)).status == "exited" and c,
                   arm_device.timeout(5), "api stopped before its build")
    assert api.status == "exited"
    arm_device.power_cut()
    thread.join(timeout=60)

    def converged() -> Any:
        last = (arm_device.status() or {}).get("last_apply") or {}
        return last.get("ok") and last.get("generation", 0) > generation and all_running(arm_device)

    wait_for(converged, arm_device.timeout(240), "the stack to converge after the power cut",
             describe=lambda: "\n".join(arm_device.logs()[-30:]))
    assert version(arm_device) == "v3"
    after = container_ids(arm_device)   # asserts one container per service
    assert after["worker"] == before["worker"] and after["cache"] == before["cache"]
    # The one tagged api image is the finished build of v3: never a half-built one.
    tagged = arm_device.engine.images.list(name="updates-api")
    assert len(tagged) == 1 and tagged[0].id not in images_before
    assert tagged[0].labels.get("io.armstack.build-hash")
    assert arm_device.container("api").image.id == tagged[0].id


@pytest.mark.device(build_cache=False)   # these tests measure builds from nothing
@pytest.mark.full
@pytest.mark.parametrize("strategy", ["kill-then-download", "delete-then-download"])
def test_update_strategies_on_the_device(arm_device: EmulatedDevice, stacks: Path, tmp_path: Path,
                                         strategy: str) -> None:
    stack = copy_stack(stacks, tmp_path)
    set_strategy(stack, "api", strategy)
    arm_device.deploy(stack)
    wait_for(lambda: all_running(arm_device), arm_device.timeout(30), "the stack to run")
    before = container_ids(arm_device)
    old_image = arm_device.engine.images.get("updates-api").id

    set_last_line(stack, "RUN sleep 3 && echo v2 > /app/version")
    report = arm_device.deploy(stack)
    api = report.service("api")
    assert api.strategy == strategy and api.rebuilt and api.recreated, api
    # The old container went down before the build: the downtime covers the whole build.
    assert api.downtime_seconds >= api.build_seconds >= 3, api
    old_kept = any(i.id == old_image for i in arm_device.engine.images.list(all=True))
    if strategy == "kill-then-download":
        assert old_kept and api.cached == api.steps - 2, api
    else:
        # The old image went first, its cache layers with it: every step ran again.
        assert not old_kept and api.cached == 0, api
    after = container_ids(arm_device)
    assert after["worker"] == before["worker"] and after["cache"] == before["cache"]
    wait_for(lambda: version(arm_device) == "v2", arm_device.timeout(10), "api to serve v2")


def set_probation(stack: Path, service: str, window: str) -> None:
    add_label(stack, service, "io.armstack.probation", window)


def api_builds(device: EmulatedDevice) -> int:
    return sum(1 for ln in device.logs() if "building updates-api for service api" in ln)


@pytest.mark.full
def test_a_crash_looping_release_is_rolled_back_and_survives_a_power_cut(arm_device: EmulatedDevice, stacks: Path,
                                                                         tmp_path: Path) -> None:
    stack = copy_stack(stacks, tmp_path)
    set_probation(stack, "api", "20s")
    arm_device.deploy(stack)
    wait_for(lambda: all_running(arm_device), arm_device.timeout(30), "the stack to run")
    before = container_ids(arm_device)
    v1_image = arm_device.container("api").image.id

    # v2's api cannot start: its program is gone. The deploy answers with the rollback.
    set_last_line(stack, "RUN echo v2 > /app/version && rm /app/server.py")
    with pytest.raises(DeployError, match="rolled back: api exited with code 2") as failed:
        arm_device.deploy(stack)
    assert "apply failed" in failed.value.runtime_message
    wait_for(lambda: all_running(arm_device), arm_device.timeout(60), "v1 back", describe=lambda: "\n".join(
        arm_device.logs()[-20:]))
    assert arm_device.container("api").image.id == v1_image and version(arm_device) == "v1"
    after = container_ids(arm_device)
    assert after["worker"] == before["worker"] and after["cache"] == before["cache"]
    assert api_builds(arm_device) == 2        # v1 and v2: the rollback built nothing (and pulled nothing)
    status = arm_device.status() or {}
    assert status["rollback"]["failed"] == "api" and status["services"]["api"]["rollbacks"] == 1

    # A power cut with v2's files on the card: the device comes back on v1, without a build.
    generation = int(status.get("generation") or 0)
    arm_device.power_cut()

    def back() -> Any:
        last = (arm_device.status() or {}).get("last_apply") or {}
        return last.get("generation", 0) > generation and all_running(arm_device)

    wait_for(back, arm_device.timeout(240), "the device to come back", describe=lambda: "\n".join(
        arm_device.logs()[-30:]))
    assert arm_device.container("api").image.id == v1_image and version(arm_device) == "v1"
    assert api_builds(arm_device) == 2
    assert "refused: this release was rolled back before" in ((arm_device.status() or {})["last_apply"]["error"])

    # A good v3 goes through its probation and stays.
    set_last_line(stack, "RUN echo v3 > /app/version")
    report = arm_device.deploy(stack)
    assert report.ok and report.rebuilt == ["api"], report
    assert version(arm_device) == "v3" and (arm_device.status() or {})["services"]["api"]["rollbacks"] == 1
