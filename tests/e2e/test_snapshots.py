"""Card templates, snapshots, the build cache and module-scoped devices, on emulated devices."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import cardstore, snapshots
from harness.device import EmulatedDevice
from harness.settings import HarnessSettings
from tests.e2e.conftest import hits

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or HarnessSettings.from_environ().card_store == "off",
                                reason="needs the card store (root, ARMSTACK_CARD_STORE not off)")


@pytest.fixture
def snapshot_name() -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    yield name
    store = cardstore.open_store()
    if store is not None:
        store.remove_snapshot(name)


def test_snapshot_clones_do_not_change_it_and_builds_are_reused(
        device_factory: Callable[..., Any], device_arch: Any, stacks: Path, snapshot_name: str) -> None:
    first = device_factory(arch=device_arch)
    assert first.card_dir is not None   # a card of the store, cloned from the arch's template
    first.deploy(stacks / "minimal")
    first.wait_until_running("client", timeout=60)
    first.wait_for_log("client", r"hits: \d+", timeout=30, since="start")
    first.snapshot(snapshot_name)
    listed = {m.name: m for m, _ in snapshots.list_snapshots(cardstore.open_store())}   # type: ignore[arg-type]
    assert listed[snapshot_name].project == "minimal"

    # A device from the snapshot comes up with the stack deployed, created afresh (no restarts).
    clone = device_factory(from_snapshot=snapshot_name)
    clone.wait_until_running("client", timeout=60)
    assert {s.restarts for s in clone.services().values()} == {0}
    assert hits(clone) >= 1   # the counter on the stack's volume came with the card
    clone.exec("server", "echo changed > /data/marker")
    # ... and what it writes stays on its own card.
    other = device_factory(from_snapshot=snapshot_name)
    other.wait_until_running("server", timeout=60)
    assert other.exec("server", "cat /data/marker").exit_code != 0

    # A plain new device deploying the same stack gets the server's image from the build
    # cache (saved after the first device built it): nothing is built.
    plain = device_factory(arch=device_arch)
    report = plain.deploy(stacks / "minimal")
    assert report.services["server"].rebuilt is False and report.services["server"].steps == 0
    plain.wait_until_running("client", timeout=60)


@pytest.mark.device(scope="module")
def test_module_device_first_test_breaks_things(arm_device: EmulatedDevice, stacks: Path) -> None:
    arm_device.deploy(stacks / "minimal")
    arm_device.wait_until_running("client", timeout=60)
    assert arm_device.reset_point is not None
    # Counted from here: on a loaded machine the deploy may have restarted an unhealthy server already.
    before = arm_device.services()["server"].restarts
    arm_device.crash("server")
    arm_device.wait_for(lambda: arm_device.services()["server"].restarts > before or None, 60,
                        "the crash to be counted")
    arm_device.wait_until_running("server", timeout=60)
    arm_device.exec("server", "echo 1000 > /data/hits")
    arm_device.fill_disk(90)


@pytest.mark.device(scope="module")
def test_module_device_next_test_finds_it_as_deployed(arm_device: EmulatedDevice) -> None:
    # The fixture reset the device before this test: it is as right after the first deploy.
    arm_device.wait_until_running("client", timeout=60)
    assert {s.restarts for s in arm_device.services().values()} == {0}
    assert arm_device.services()["server"].last_exit is None   # the runtime forgot the crash too
    assert not [ln for ln in arm_device.logs() if "exited with code" in ln]   # the log is this test's
    assert arm_device.disk_usage().percent < 80
    assert hits(arm_device) < 1000


def test_a_changed_line_builds_from_the_cached_layers_on_a_new_device(
        device_factory: Callable[..., Any], device_arch: Any, stacks: Path, tmp_path: Path) -> None:
    stack = tmp_path / "updates"
    shutil.copytree(stacks / "updates", stack)
    dockerfile = stack / "api" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().rstrip("\n") + f"\nRUN echo {uuid.uuid4().hex} > /tmp/v1\n")
    first = device_factory(arch=device_arch).deploy(stack)
    assert "api" in first.rebuilt   # new inputs: built, then cached (worker may come from the cache)

    dockerfile.write_text(dockerfile.read_text().replace("/tmp/v1", "/tmp/v2"))
    second = device_factory(arch=device_arch).deploy(stack)
    api = second.service("api")
    assert second.rebuilt == ["api"], second         # worker came from the build cache
    # Only the changed last line ran: FROM has no cache line, every other step was cached.
    assert api.cached == api.steps - 2, api
