"""Disk handling against the native engine, with a fake small disk injected as the usage provider.

Ownership: a foreign exited container, a foreign image and every volume survive the boot
cleanup and the eviction; the stack's stale releases go, least recently used first, while the
current and previous releases stay. Admission: an update that does not fit is refused with a
clear error and the running release keeps running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.compose.source import StackSource
from runtime.disk import DiskPolicy, DiskUsage, Threshold
from runtime.logs import LogPresenter
from runtime.settings import RuntimeSettings
from runtime.supervisor import Supervisor
from tests.integration.conftest import BASE_IMAGE, TEST_LABEL, Stack, write_stack

docker = pytest.importorskip("docker")
GB = 1 << 30


def fake_disk(percent: float) -> Any:
    def usage() -> DiskUsage:
        used = int(GB * percent / 100)
        return DiskUsage(used, GB, GB - used)
    return usage


def run_once(stack: Stack, percent: float, policy: DiskPolicy | None = None) -> Supervisor:
    out = io.StringIO()
    # Probation off, as the stack fixture's environment has it: these updates test the disk.
    settings = RuntimeSettings.from_environ({"ARMSTACK_EXTRA_LABELS": TEST_LABEL, "ARMSTACK_PROBATION": "0"})
    settings = dataclasses.replace(settings, data_dir=stack.data_dir, disk=policy or DiskPolicy())
    sup = Supervisor(stack.client, StackSource.of(stack.dir / "compose.yaml", stack.project), settings=settings,
                     presenter=LogPresenter(out, color=False), once=True, apply_timeout=60,
                     disk_usage=fake_disk(percent))
    sup.run()
    sup.output = out.getvalue()  # type: ignore[attr-defined]
    return sup


def build_image(client: Any, text: str, labels: dict[str, str], tag: str | None = None) -> str:
    f = io.BytesIO(f"FROM {BASE_IMAGE}\nRUN echo '{text}' > /marker\n".encode())
    img, _ = client.images.build(fileobj=f, labels={"io.armstack.test": "1", **labels}, tag=tag, rm=True)
    return str(img.id)


@pytest.fixture
def foreign(engine: Any) -> Iterator[dict[str, str]]:
    """A foreign image, a foreign exited container and a volume with the stack-looking name."""
    made: dict[str, str] = {}
    try:
        made["image"] = build_image(engine, f"foreign {time.time()}", {})
        c = engine.containers.run(BASE_IMAGE, ["true"], detach=True, labels={"io.armstack.test": "1"})
        c.wait(timeout=30)
        made["container"] = c.id
        yield made
    finally:
        with contextlib.suppress(Exception):
            engine.containers.get(made["container"]).remove(force=True)
        with contextlib.suppress(Exception):
            engine.images.remove(made["image"], force=True)


def exists(client: Any, kind: str, ident: str) -> bool:
    try:
        getattr(client, kind).get(ident)
        return True
    except docker.errors.NotFound:
        return False


def record_built(stack: Stack, ids: dict[str, str]) -> None:
    """Record images as built by the runtime for the stack (what its builds write to disk.json)."""
    path = stack.data_dir / stack.project / "disk.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(path.read_text()) if path.exists() else {}
    data["built"] = {**(data.get("built") or {}), **ids}
    path.write_text(json.dumps(data))


def test_boot_cleanup_and_eviction_touch_only_what_the_stack_owns(stack: Stack, engine: Any,
                                                                   foreign: dict[str, str]) -> None:
    owned = {"io.armstack.image.stack": stack.project, "io.armstack.image.service": "db"}
    old1 = build_image(engine, "release 1", owned)
    time.sleep(1.1)   # creation times order releases (seconds resolution)
    old2 = build_image(engine, "release 2", owned)
    record_built(stack, {old1: "db", old2: "db"})
    vol = engine.volumes.create(f"{stack.project}_data", labels={"io.armstack.stack": stack.project,
                                                                  "io.armstack.test": "1"})
    stray = engine.containers.create(BASE_IMAGE, ["true"], labels={"io.armstack.stack": stack.project,
                                                                    "io.armstack.service": "gone",
                                                                    "io.armstack.test": "1"})
    write_stack(stack.dir, stack.project)

    sup = run_once(stack, 50)
    assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
    # Boot cleanup: the stray container and the release beyond keep_releases=1 went; old2 is the rollback.
    assert not exists(engine, "containers", stray.id)
    assert not exists(engine, "images", old1) and exists(engine, "images", old2)
    assert exists(engine, "images", foreign["image"]) and exists(engine, "containers", foreign["container"])
    assert exists(engine, "volumes", vol.name)
    disk = sup.status()["disk"]
    assert disk["percent"] == 50.0 and disk["high"] == "85%" and "db" not in str(disk.get("refused"))

    # Pressure with keep_releases=0: more stale releases, evicted oldest first; never foreign, volume, in use.
    old3 = build_image(engine, "release 3", owned)
    time.sleep(1.1)
    old4 = build_image(engine, "release 4", owned)
    record_built(stack, {old3: "db", old4: "db"})
    sup = run_once(stack, 95, DiskPolicy(keep_releases=0))
    assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
    removed = json.loads((stack.data_dir / stack.project / "disk.json").read_text())["last_cleanup"]["removed"]
    short = [i.removeprefix("sha256:")[:12] for i in (old2, old3, old4)]
    assert [r for r in removed if r in short] == short, removed   # LRU (never run: oldest first)
    assert exists(engine, "images", foreign["image"]) and exists(engine, "containers", foreign["container"])
    assert exists(engine, "volumes", vol.name)
    db = stack.containers()["db"]
    assert db["State"]["Running"] and exists(engine, "images", db["Image"])


def test_update_that_does_not_fit_is_refused_and_the_release_keeps_running(stack: Stack, engine: Any) -> None:
    write_stack(stack.dir, stack.project)
    sup = run_once(stack, 50)
    assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
    before = stack.containers()["db"]
    (stack.dir / "db" / "Dockerfile").write_text(
        (stack.dir / "db" / "Dockerfile").read_text().replace("echo built", "echo built again"))

    sup = run_once(stack, 97, DiskPolicy(high=Threshold.parse("90%")))
    last = sup.last_apply
    assert last is not None and not last.ok
    assert last.error is not None and "Not enough space" in last.error and "needs about" in last.error
    assert "current release keeps running" in last.error
    after = stack.containers()["db"]
    assert after["Id"] == before["Id"] and after["State"]["Running"]
    assert "building" not in sup.output  # type: ignore[attr-defined]
    assert "db" in sup.status()["disk"]["refused"]

    # Room again: the same update goes through.
    sup = run_once(stack, 40)
    assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
    assert stack.containers()["db"]["Id"] != before["Id"]


def test_status_cli_prints_a_disk_line(stack: Stack, tmp_path: Path) -> None:
    write_stack(stack.dir, stack.project)
    proc = stack.start_supervisor("--reconcile-interval", "2")
    stack.wait_applied()
    stack.wait("a disk status", lambda: (stack.status().get("disk") or {}).get("percent") is not None)
    res = stack.cli("status")
    assert "disk " in res.stdout and "watermarks 85%/80%" in res.stdout, res.stdout + res.stderr
    stack.stop_supervisor(proc)


def test_images_with_inherited_or_committed_labels_are_not_the_stacks(stack: Stack, engine: Any) -> None:
    """Ownership is the ids the runtime built or pulled, never labels: an operator's image built
    FROM the stack's image inherits its labels, and `docker commit` of a stack container copies
    the container's; both must survive the boot cleanup, and so must the real rollback image."""
    rollback = build_image(engine, "the previous release",
                           {"io.armstack.image.stack": stack.project, "io.armstack.image.service": "db"})
    record_built(stack, {rollback: "db"})
    time.sleep(1.1)   # the foreign images below are newer than the rollback
    write_stack(stack.dir, stack.project)
    sup = run_once(stack, 50)
    assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
    current = engine.images.get(f"{stack.project}-db").id
    made: list[str] = []
    try:
        time.sleep(1.1)
        f = io.BytesIO(f"FROM {stack.project}-db\nRUN echo operator > /operator\n".encode())
        operator, _ = engine.images.build(fileobj=f, tag=f"{stack.project}-operator:1", rm=True)
        made.append(operator.id)
        assert operator.labels["io.armstack.image.stack"] == stack.project   # inherited through FROM
        db = engine.containers.get(stack.containers()["db"]["Id"])
        backup = db.commit(repository=f"{stack.project}-backup", tag="1")
        made.append(backup.id)
        assert backup.labels["io.armstack.stack"] == stack.project           # copied by commit

        sup = run_once(stack, 50)   # boot cleanup again, keep_releases=1
        assert sup.last_apply is not None and sup.last_apply.ok, sup.output  # type: ignore[attr-defined]
        for image_id in (operator.id, backup.id, rollback, current):
            assert exists(engine, "images", image_id), (image_id, sup.output)  # type: ignore[attr-defined]
        built = json.loads((stack.data_dir / stack.project / "disk.json").read_text())["built"]
        assert built.get(current) == "db" and operator.id not in built and backup.id not in built
    finally:
        for image_id in made:
            with contextlib.suppress(docker.errors.APIError):
                engine.images.remove(image_id, force=True)
        with contextlib.suppress(docker.errors.APIError):
            engine.images.remove(rollback, force=True)


def test_the_probe_measures_the_data_root_through_its_own_volume(stack: Stack, engine: Any) -> None:
    from runtime.diskio import DiskIO, usage_of_path

    io_ = DiskIO(engine, stack.project, extra_labels={"io.armstack.test": "1"})
    got = io_.probe([BASE_IMAGE])
    root = engine.info()["DockerRootDir"]
    assert got.total > 0 and got.used <= got.total
    try:
        want = usage_of_path(root)    # where this process sees the data root, compare
    except OSError:
        want = None
    if want is not None:
        assert got.total == want.total and abs(got.used - want.used) < 64 * (1 << 20)
    vol = engine.volumes.get(io_.probe_volume)
    assert vol.attrs["Labels"]["io.armstack.stack"] == stack.project
    # The probe container is gone (--rm); what it mounts is checked in tests/unit/test_disk.py.
    assert not engine.containers.list(all=True, filters={"label": f"io.armstack.stack={stack.project}"})
