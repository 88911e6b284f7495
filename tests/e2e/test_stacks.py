"""The example stacks on emulated devices: deployed cold, every service up, data flowing."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from harness.device import EmulatedDevice
from harness.waits import wait_for


def _get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """Status, headers and body of a request; an HTTP error status is an answer too."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode(errors="replace")


@pytest.mark.full
@pytest.mark.device(arch=["arm64", "armv7"])
def test_torrent_box(arm_device: EmulatedDevice, stacks: Path) -> None:
    arm_device.deploy(stacks / "torrent-box")
    for service in ("transmission", "files"):
        arm_device.wait_until_running(service, timeout=120)

    # What transmission writes to /downloads, `files` lists and serves (volumes_from).
    arm_device.exec("transmission", "echo finished > /downloads/demo.txt")
    listing = wait_for(lambda: (r := _get(arm_device.url(80)))[0] == 200 and "demo.txt" in r[2] and r,
                       arm_device.timeout(10), "the files service to list demo.txt")
    assert "Index of /" in listing[2]
    assert _get(arm_device.url(80, "/demo.txt"))[2] == "finished\n"
    # ... read-only: the file server cannot change the downloads.
    assert arm_device.exec("files", "touch /downloads/x").exit_code != 0

    # The RPC answers from any host without a password: 409 hands out the session id, then it works.
    code, headers, _ = _get(arm_device.url(9091, "/transmission/rpc"))
    assert code == 409, code
    session = headers["X-Transmission-Session-Id"]
    code, _, body = _get(arm_device.url(9091, "/transmission/rpc"), json.dumps({"method": "session-get"}).encode(),
                         {"X-Transmission-Session-Id": session})
    assert code == 200 and json.loads(body)["arguments"]["download-dir"] == "/downloads", body
    assert _get(arm_device.url(9091, "/transmission/web/"))[0] == 200


@pytest.mark.full
@pytest.mark.device(arch=["arm64", "armv7"])
def test_sensor_hub(arm_device: EmulatedDevice, stacks: Path) -> None:
    arm_device.deploy(stacks / "sensor-hub")
    for service in ("broker", "publisher", "subscriber", "dashboard"):
        arm_device.wait_until_running(service, timeout=120)

    def stored() -> int:
        code, _, body = _get(arm_device.url(8080, "/readings.json"))
        return int(json.loads(body)["count"]) if code == 200 else 0

    # Three sensors, one reading each per second: the count keeps growing.
    first = wait_for(lambda: stored() or None, arm_device.timeout(20), "the first stored readings")
    wait_for(lambda: stored() >= first + 9, arm_device.timeout(10), "the stored readings to grow")
    page = _get(arm_device.url(8080))[2]
    assert "greenhouse-temperature" in page and "readings stored" in page
    assert _get(arm_device.url(8080, "/health"))[:1] == (200,)
    # The readings live on the named volume, in SQLite.
    assert arm_device.exec("subscriber", "ls /data").output.split()[0] == "readings.db"
    assert any("subscribed to sensors/#" in ln for ln in arm_device.logs("subscriber"))


@pytest.mark.quick
def test_gateway_runs_as_written(arm_device: EmulatedDevice, stacks: Path) -> None:
    """Secrets, an inline config, an internal network, fixed container names and a profile, on arm64."""
    arm_device.deploy(stacks / "gateway")
    arm_device.wait_until_running("api", timeout=120)
    # The config's greeting, through the published port; the token from the secret guards the rest.
    assert arm_device.wait_for_http(8000, "/hello", timeout=60) == "hello from the gateway"
    assert _get(arm_device.url(8000))[0] == 401
    auth = {"Authorization": "Bearer s3cr3t-demo-token"}
    assert _get(arm_device.url(8000), b"first note", auth)[0] == 201
    assert _get(arm_device.url(8000), headers=auth)[2] == "first note\n"
    # Fixed names, the secret read-only at /run/secrets, and no way out of the internal network.
    engine = arm_device.engine
    assert {c.name for c in engine.containers.list()} >= {"gateway-api", "gateway-store"}
    assert arm_device.exec("api", "cat /run/secrets/api_token").output == "s3cr3t-demo-token\n"
    assert arm_device.exec("api", "touch /run/secrets/api_token").exit_code != 0
    backend = engine.networks.get("gateway_backend")
    assert backend.attrs["Internal"] is True
    # The debug profile is off: its service is not part of the stack until asked for.
    assert "shell" not in arm_device.services()
    arm_device.deploy(stacks / "gateway", profiles=["debug"])
    arm_device.wait_until_running("shell", timeout=120)
    read_notes = "import urllib.request; print(urllib.request.urlopen('http://store:9000/').read().decode())"
    assert arm_device.exec("shell", ["python3", "-c", read_notes]).output == "first note\n\n"
    # The token never shows in the runtime's log or status.
    assert not any("s3cr3t-demo-token" in line for line in arm_device.logs())
    assert "s3cr3t-demo-token" not in json.dumps(arm_device.status())
