"""armstack harness: emulated ARM devices and a pytest plugin to test compose stacks on them.

``from harness import EmulatedDevice`` (or ``BoardDevice`` for a real board's engine); both are
a ``Device`` (``harness.protocol``), and ``device.services()`` maps names to ``ServiceState``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BoardDevice", "Device", "EmulatedDevice", "ServiceState"]


def __getattr__(name: str) -> Any:
    # Imported on first use: `armstack images` and the plugin's option parsing stay light.
    if name == "EmulatedDevice":
        from harness.device import EmulatedDevice

        return EmulatedDevice
    if name in ("Device", "ServiceState"):
        from harness import protocol

        return getattr(protocol, name)
    if name == "BoardDevice":
        from harness.board import BoardDevice

        return BoardDevice
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
