"""The architectures an emulated device can have, and what differs between them."""

from __future__ import annotations

import platform
from dataclasses import dataclass

from harness.errors import SetupError


@dataclass(frozen=True)
class Arch:
    name: str          # what users pass: arm64, armv7, amd64
    debian: str        # debootstrap --arch
    platform: str      # docker --platform
    uname: str         # `uname -m` inside a container
    qemu: str | None   # binfmt_misc handler name, None when native on x86_64
    # Measured slowdown of Python work under QEMU user mode on this kind of machine
    # (3.4x start-up, 5.7x pure loops): timeouts are multiplied by it.
    factor: float

    def __str__(self) -> str:
        return self.name


ARCHES: dict[str, Arch] = {
    "arm64": Arch("arm64", "arm64", "linux/arm64", "aarch64", "qemu-aarch64", 6.0),
    "armv7": Arch("armv7", "armhf", "linux/arm/v7", "armv7l", "qemu-arm", 7.0),
    "amd64": Arch("amd64", "amd64", "linux/amd64", "x86_64", None, 1.0),
}
ALIASES = {"aarch64": "arm64", "armhf": "armv7", "arm": "armv7", "x86_64": "amd64"}


def get_arch(name: str | Arch) -> Arch:
    """The ``Arch`` a user's name (or alias: aarch64, armhf, x86_64) stands for; an ``Arch`` as it is.

    Names are parsed here once, at the edges (``--arch``, a device's ``arch=``); everything
    past them passes ``Arch`` objects along.
    """
    if isinstance(name, Arch):
        return name
    key = ALIASES.get(name, name)
    try:
        arch = ARCHES[key]
    except KeyError:
        raise SetupError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHES)}") from None
    if key == native_arch():
        return Arch(arch.name, arch.debian, arch.platform, arch.uname, None, 1.0)
    return arch


def parse_arches(text: str) -> list[Arch]:
    """The arches of a comma list such as ``--arch arm64,armv7``; SetupError on an unknown one."""
    return [get_arch(part.strip()) for part in text.split(",") if part.strip()]


def native_arch() -> str:
    return ALIASES.get(platform.machine(), platform.machine())


def check_emulation(arch: Arch) -> None:
    """Fail early, with the fix, when the kernel cannot run this arch's binaries."""
    if arch.qemu is None:
        return
    path = f"/proc/sys/fs/binfmt_misc/{arch.qemu}"
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        raise SetupError(
            f"{arch.name} binaries cannot run here: {path} is missing. Run `make setup` "
            "(or: apt-get install qemu-user-static binfmt-support) to register QEMU."
        ) from None
    flags = next((ln.split(":", 1)[1] for ln in text.splitlines() if ln.startswith("flags:")), "")
    if not text.startswith("enabled") or "F" not in flags:
        raise SetupError(
            f"{path} is not enabled with the F flag (flags:{flags.strip() or ' none'}); containers "
            "need it. Run `make setup` to register QEMU again."
        )
