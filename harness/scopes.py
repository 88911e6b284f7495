"""Devices shared by the tests of a module: ``arm_device_module`` and
``@pytest.mark.device(scope="module")``.

One device per (arch, card size) per test module. Its first deploy leaves a reset point (a
snapshot of the card right after the stack came up); every later test that asks for the device
gets it back in that state (``device.reset()``: faults healed, volumes and stack files as
deployed, restart counts at 0), which takes seconds where a new device and a new deploy take
tens of seconds.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from harness.arch import Arch, get_arch

SCOPES = ("function", "module")


def marker_scope(marker: Any) -> str:
    """The ``scope`` of a ``device`` marker (default ``function``); a clear error for others."""
    scope = str(marker.kwargs.get("scope", "function")) if marker is not None else "function"
    if scope not in SCOPES:
        raise pytest.UsageError(f"@pytest.mark.device(scope={scope!r}): expected one of {', '.join(SCOPES)}")
    return scope


class ModuleDevices:
    """The module's shared devices, started on first use and stopped at the module's end."""

    def __init__(self, *, keep: bool) -> None:
        self.keep = keep
        self._devices: dict[tuple[str, str], Any] = {}
        self._handed_out: set[tuple[str, str]] = set()

    def get(self, arch: str | Arch, disk: str) -> Any:
        from harness.device import EmulatedDevice

        key = (get_arch(arch).name, disk)
        device = self._devices.get(key)
        if device is None:
            device = EmulatedDevice(arch=arch, disk=disk, keep=self.keep)
            device.auto_reset_point = True
            self._devices[key] = device
            device.start()
        elif key in self._handed_out and device.reset_point is not None:
            device.reset()
        self._handed_out.add(key)
        return device

    def close(self) -> None:
        for device in reversed(list(self._devices.values())):
            device.stop()
        self._devices.clear()


@pytest.fixture(scope="module")
def _armstack_module_devices(request: pytest.FixtureRequest, _armstack_session: None) -> Iterator[ModuleDevices]:
    devices = ModuleDevices(keep=bool(request.config.getoption("--keep-devices")))
    yield devices
    devices.close()


@pytest.fixture
def arm_device_module(request: pytest.FixtureRequest, device_arch: Arch,
                      _armstack_module_devices: ModuleDevices) -> Any:
    """An emulated device shared by the module's tests, reset to its just-deployed state before
    each test after the first."""
    marker = request.node.get_closest_marker("device")
    disk = (marker.kwargs.get("disk") if marker else None) or str(request.config.getoption("--device-disk"))
    return _armstack_module_devices.get(device_arch, disk)
