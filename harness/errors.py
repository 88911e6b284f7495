"""Errors raised by the armstack harness.

One base class; subclasses carry the data a test or a user needs to act on them::

    HarnessError
    ├── SetupError          the machine lacks a prerequisite (engine, QEMU, debootstrap)
    ├── ImageBuildError     a base or runtime image could not be built
    ├── DeviceError         an emulated device failed to start or to answer
    │   ├── DeployError     the runtime rejected or failed to apply a stack
    │   └── WaitTimeout     a wait ran out of time (says what it waited for, the state, last logs)
    └── FaultError          a fault could not be injected
"""

from __future__ import annotations


class HarnessError(Exception):
    """Base of every error the harness raises on purpose."""


class SetupError(HarnessError):
    """A prerequisite is missing; the message says which and the command that fixes it."""


class ImageBuildError(HarnessError):
    """Building a base image or the runtime image failed."""


class DeviceError(HarnessError):
    """An emulated device failed to start, stop or answer."""


class DeployError(DeviceError):
    """The device's runtime rejected a stack or failed to apply it; ``runtime_message`` is its own words."""

    def __init__(self, message: str, runtime_message: str = ""):
        self.runtime_message = runtime_message
        super().__init__(message + (f"\nruntime said:\n{runtime_message}" if runtime_message else ""))


class WaitTimeout(DeviceError, TimeoutError):
    """A wait ran out of time."""


class FaultError(HarnessError):
    """A fault could not be injected (e.g. the target service has no running container)."""
