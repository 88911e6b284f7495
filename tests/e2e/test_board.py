"""The device API against a board's engine over --docker-host, with a second engine standing in
for the board: an emulated device's engine reached over TCP, as a real board's would be."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.board import BoardDevice
from harness.errors import FaultError
from harness.protocol import Device
from harness.waits import wait_for


@pytest.mark.quick
@pytest.mark.device(arch="arm64")
def test_device_api_on_a_board_over_docker_host(device_factory: Callable[..., Any], device_arch: Any,
                                                stacks: Path) -> None:
    arm_device = device_factory(arch=device_arch, engine_tcp=True)   # its engine answers on TCP, as a board's
    ip = arm_device.engine_container().attrs["NetworkSettings"]["IPAddress"]
    with BoardDevice(f"tcp://{ip}:2375") as board:
        assert board.engine.info()["Name"] == arm_device.engine.info()["Name"]
        board.deploy(stacks / "minimal")
        board.wait_until_running("client", timeout=120)
        runtime = board.engine.containers.get(board.runtime_container().id)   # on the board, not the host
        assert runtime.status == "running"
        board.crash("server")
        wait_for(lambda: board.services()["server"].restarts == 1, 60, "the board's runtime to restart server")
        board.wait_until_running("server", timeout=60)
        assert any(line.startswith("client") and "hits:" in line for line in board.logs())
        assert board.disk_usage().total > 0
        assert "power" not in board.capabilities and isinstance(board, Device)
        with pytest.raises(FaultError, match="real board"):
            board.power_cut()
    assert not board.engine.containers.list(all=True, filters={"label": f"io.armstack.device={board.name}"})
