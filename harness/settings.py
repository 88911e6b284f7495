"""The harness's settings: the pytest options and the environment, resolved once.

Every environment variable the harness reads is read here. The plugin builds one
``HarnessSettings`` from the pytest config at configure time (``from_config``) and keeps it in
the config's stash; functions usable without pytest (``harness.images``, the ``armstack
images`` command) take a ``HarnessSettings`` and default to ``HarnessSettings.from_environ()``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ARCH_ENV = "ARMSTACK_ARCH"
CACHE_ENV = "ARMSTACK_CACHE"
IMAGE_PREFIX_ENV = "ARMSTACK_IMAGE_PREFIX"
DEBIAN_MIRROR_ENV = "ARMSTACK_DEBIAN_MIRROR"
CA_BUNDLE_ENV = "ARMSTACK_CA_BUNDLE"
SHARED_MOUNTS_ENV = "ARMSTACK_SHARED_MOUNTS"
CARD_STORE_ENV = "ARMSTACK_CARD_STORE"
CARD_STORE_MODES = ("auto", "copy", "off")


@dataclass(frozen=True)
class HarnessSettings:
    """Where the harness keeps and finds things, and what it builds.

    ``arch``: the default of ``--arch`` (a comma list). ``cache``: rootfs tarballs and other
    build inputs. ``image_prefix``: the repository prefix of every image the kit builds.
    ``debian_mirror``: None means the host's own apt sources. ``ca_bundle``: the CA bundle the
    stand-in images trust. ``shared_mounts``: where each device's card directory is shared
    between its engine and runtime containers. ``docker_host``: a real board's engine
    (``--docker-host``), None for emulated devices. ``card_store``: ``auto`` (cards cloned by
    reflink from an XFS store, else by sparse copy), ``copy`` (always sparse copies) or ``off``
    (every device makes a new card; no templates, snapshots or ``reset()``).
    """

    arch: str = "arm64"
    cache: Path = Path.home() / ".cache" / "armstack"
    image_prefix: str = "armstack"
    debian_mirror: str | None = None
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")
    shared_mounts: Path = Path("/run/armstack/devices")
    docker_host: str | None = None
    card_store: str = "auto"

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> HarnessSettings:
        """The settings from the environment (None: the process's), then the defaults."""
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            arch=env.get(ARCH_ENV) or default.arch,
            cache=Path(env[CACHE_ENV]) if env.get(CACHE_ENV) else default.cache,
            image_prefix=env.get(IMAGE_PREFIX_ENV) or default.image_prefix,
            debian_mirror=env.get(DEBIAN_MIRROR_ENV) or None,
            ca_bundle=Path(env[CA_BUNDLE_ENV]) if env.get(CA_BUNDLE_ENV) else default.ca_bundle,
            shared_mounts=Path(env[SHARED_MOUNTS_ENV]) if env.get(SHARED_MOUNTS_ENV) else default.shared_mounts,
            card_store=_card_store(env.get(CARD_STORE_ENV) or default.card_store),
        )

    @classmethod
    def from_config(cls, config: Any, environ: Mapping[str, str] | None = None) -> HarnessSettings:
        """The settings of a pytest session: its options (``--arch``, ``--docker-host``) over the
        environment. ``config`` is a ``pytest.Config`` (anything with ``getoption``)."""
        base = cls.from_environ(environ)
        arch = config.getoption("--arch", default=None) or base.arch
        host = config.getoption("--docker-host", default=None) or None
        return cls(arch=str(arch), cache=base.cache, image_prefix=base.image_prefix,
                   debian_mirror=base.debian_mirror, ca_bundle=base.ca_bundle, shared_mounts=base.shared_mounts,
                   docker_host=str(host) if host else None, card_store=base.card_store)


def _card_store(value: str) -> str:
    if value not in CARD_STORE_MODES:
        raise ValueError(f"{CARD_STORE_ENV}={value!r}: expected one of {', '.join(CARD_STORE_MODES)}")
    return value
