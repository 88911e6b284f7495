"""Both kinds of device are a ``Device``; what they share works the same without an engine."""

from __future__ import annotations

import ast
import dataclasses
import json
from pathlib import Path

import pytest

from harness.arch import Arch, get_arch, parse_arches
from harness.board import BoardDevice
from harness.device import DeviceBase, EmulatedDevice, ExecResult
from harness.errors import DeviceError, FaultError, WaitTimeout
from harness.protocol import BOARD, EMULATED, POWER, PROCESS_FAULTS, Device, FaultTarget, ServiceState
from runtime.state import ApplyResult, ServiceStatus, StatusDocument, SupervisorInfo

pytestmark = pytest.mark.unit
HARNESS = Path(__file__).resolve().parents[2] / "harness"


def _emulated(arch: str | Arch = "arm64") -> EmulatedDevice:
    return EmulatedDevice(arch=arch, name="emu", client=object())  # type: ignore[arg-type]


def _board() -> BoardDevice:
    board = BoardDevice.__new__(BoardDevice)   # no board to reach: only the shared parts are used
    DeviceBase.__init__(board, get_arch("arm64"), "brd", keep=False, host=object())  # type: ignore[arg-type]
    board.docker_host = "tcp://board:2375"
    return board


def test_both_kinds_are_devices_and_fault_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    # isinstance reads every member, and ``engine`` of a device not started raises; mypy checks
    # the signatures (the ``_checked`` assignments in harness.device and harness.board).
    monkeypatch.setattr(EmulatedDevice, "engine", property(lambda self: object()))
    board = _board()
    board.board = object()  # type: ignore[assignment]
    for device in (_emulated(), board):
        assert isinstance(device, Device) and isinstance(device, FaultTarget)
    assert not isinstance(object(), Device)


def test_capabilities_say_what_a_kind_can_do() -> None:
    emulated, board = _emulated(), _board()
    assert {EMULATED, POWER, PROCESS_FAULTS} <= emulated.capabilities and BOARD not in emulated.capabilities
    assert BOARD in board.capabilities and POWER not in board.capabilities
    with pytest.raises(FaultError, match="power cut is not possible on a real board"):
        board.power_cut()
    with pytest.raises(DeviceError, match="not a container"):
        board.engine_container()


def test_shell_checks_the_exit_code_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    device = _emulated()
    monkeypatch.setattr(device, "_run_shell", lambda cmd: ExecResult(1, "no such file\n"))
    with pytest.raises(DeviceError, match=r"`cat /x` failed on device emu \(exit 1\): no such file"):
        device.shell("cat /x")
    assert device.shell("cat /x", check=False) == ExecResult(1, "no such file\n")


def test_containers_before_start_say_so() -> None:
    with pytest.raises(DeviceError, match="device emu has no runtime container"):
        _emulated().runtime_container()
    with pytest.raises(DeviceError, match="device emu has no engine container"):
        _emulated().engine_container()


def test_device_wait_is_scaled_like_the_other_device_waits() -> None:
    slow = dataclasses.replace(get_arch("arm64"), factor=10.0)
    device = _emulated(slow)
    with pytest.raises(WaitTimeout, match=r"after 0\.3s waiting for nothing"):
        device.wait_for(lambda: None, 0.03, "nothing", interval=0.01)
    assert device.wait_for(lambda: 7, 0.03, "a number") == 7


def test_services_are_the_status_documents_own_type(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = StatusDocument(project="p", updated_at=5.0, supervisor=SupervisorInfo(pid=1, started_at=1.0),
                         last_apply=ApplyResult(generation=1, ok=True),
                         services={"web": ServiceStatus(state="running", restarts=2, last_exit=137,
                                                        container_id="c1")})
    device = _emulated()
    monkeypatch.setattr(device, "status", lambda: json.loads(json.dumps(doc.to_json())))
    web = device.services()["web"]
    assert ServiceState is ServiceStatus and isinstance(web, ServiceState)
    assert (web.status, web.restarts, web.last_exit, web.container_id, web.oom_killed) == ("running", 2, 137, "c1",
                                                                                         False)
    assert device.status_document() == doc


def test_arch_is_parsed_once_and_passed_on_as_it_is() -> None:
    arches = parse_arches("arm64, armhf,")
    assert [a.name for a in arches] == ["arm64", "armv7"] and str(arches[0]) == "arm64"
    assert get_arch(arches[1]) is arches[1]
    assert _emulated(arches[0]).arch is arches[0]


def _imported_names(path: Path) -> set[tuple[str, str]]:
    tree = ast.parse(path.read_text())
    return {(node.module or "", alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
            for alias in node.names}


def test_faults_and_devices_use_no_private_helpers_of_each_other() -> None:
    faults = _imported_names(HARNESS / "faults.py")
    device = _imported_names(HARNESS / "device.py") | _imported_names(HARNESS / "board.py")
    assert not any(mod.startswith("harness.device") or name.startswith("_") for mod, name in faults)
    assert not any(name.startswith("_") for mod, name in device if mod.startswith("harness"))
    source = (HARNESS / "faults.py").read_text()
    assert "device._" not in source


