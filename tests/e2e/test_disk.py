"""Disk pressure on emulated devices with a small SD card.

The quick test is the representative one: a card filled to 97 % by a file the runtime does
not own keeps the stack running, refuses the update with a clear message, and applies it by
itself once the space is freed; foreign containers and images on the device survive. The
full ones: log rotation against a chatty service, and repeated big updates that never push
the card past the high watermark nor evict the running release.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from bench import disk as bench_disk
from harness.device import EmulatedDevice
from harness.errors import DeployError
from harness.waits import wait_for


def _foreign(device: EmulatedDevice) -> tuple[str, str]:
    """A foreign image and a foreign exited container on the device engine."""
    f = io.BytesIO(b"FROM debian:bookworm-slim\nRUN echo foreign > /foreign\n")
    img, _ = device.engine.images.build(fileobj=f, rm=True, tag="foreign/app:1", labels={"io.armstack.test": "1"})
    c = device.engine.containers.run("debian:bookworm-slim", ["true"], detach=True, labels={"io.armstack.test": "1"})
    c.wait(timeout=120)
    return str(img.id), str(c.id)


def _survive(device: EmulatedDevice, image_id: str, container_id: str) -> None:
    device.engine.images.get(image_id)
    device.engine.containers.get(container_id)


@pytest.mark.quick
@pytest.mark.device(disk="1G")
def test_full_card_refuses_update_and_applies_it_once_freed(arm_device: EmulatedDevice, tmp_path: Path) -> None:
    d = arm_device
    bench_disk.write_stack(tmp_path, 1, image_mb=20)
    d.deploy(tmp_path)
    d.wait_until_running("app", timeout=120)
    first = d.container("app").id
    image_id, container_id = _foreign(d)

    filled = d.fill_disk(97)
    assert filled.percent >= 96
    bench_disk.write_stack(tmp_path, 2, image_mb=20)
    with pytest.raises(DeployError) as refused:
        d.deploy(tmp_path)
    text = str(refused.value) + " " + str(refused.value.runtime_message)
    status = d.status() or {}
    error = (status.get("last_apply") or {}).get("error") or ""
    assert "Not enough space" in error and "current release keeps running" in error, (text, error)
    assert status["disk"]["percent"] >= 90 and "app" in status["disk"]["refused"]
    # The stack keeps running its current release.
    assert d.container("app").id == first and bench_disk.running_version(d) == "1"
    assert any("Not enough space" in ln for ln in d.logs())

    d.free_disk()
    wait_for(lambda: bench_disk.running_version(d) == "2", d.timeout(150), "the refused update to go through",
             describe=lambda: "\n".join(d.logs()[-20:]))
    wait_for(lambda: ((d.status() or {}).get("last_apply") or {}).get("ok") is True, d.timeout(30),
             "the status to report the update applied")
    _survive(d, image_id, container_id)
    assert (d.status() or {})["disk"]["percent"] < 85


@pytest.mark.full
@pytest.mark.device(disk="1G")
def test_chatty_service_cannot_fill_the_card(arm_device: EmulatedDevice, tmp_path: Path) -> None:
    d = arm_device
    (tmp_path / "compose.yaml").write_text(
        "name: chatty\nservices:\n  chatty:\n    image: debian:bookworm-slim\n    stop_signal: SIGKILL\n"
        "    command: [\"sh\", \"-c\", \"while true; do head -c 1048576 /dev/zero | tr '\\\\0' x; echo; done\"]\n")
    d.deploy(tmp_path)
    d.wait_until_running("chatty", timeout=60)
    start = d.disk_usage()
    c = d.container("chatty")
    assert c.attrs["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    # Until the engine has rotated the log twice: json-file keeps 3 files of 10 MB at most.
    wait_for(lambda: d.shell(f"ls /var/lib/docker/containers/{c.id}/{c.id}-json.log.2").exit_code == 0,
             d.timeout(120), "the chatty service's log to rotate twice")
    logs = d.shell(f"du -sb /var/lib/docker/containers/{c.id} | cut -f1").output.strip()
    assert int(logs) < 40 << 20, logs   # 3 × 10 MB at most, plus the container's own files
    assert d.disk_usage().used - start.used < 64 << 20


@pytest.mark.full
@pytest.mark.device(disk="1500M")
def test_repeated_big_updates_stay_under_high_and_keep_the_release(arm_device: EmulatedDevice,
                                                                    tmp_path: Path) -> None:
    d = arm_device
    bench_disk.write_stack(tmp_path, 1)
    d.deploy(tmp_path)
    d.wait_until_running("app", timeout=120)
    image_id, container_id = _foreign(d)
    result: dict[str, Any] = bench_disk.soak(d, tmp_path, 6)
    assert result["stayed_under_high"], result
    assert result["wrong_release_after_update"] == 0, result
    _survive(d, image_id, container_id)
