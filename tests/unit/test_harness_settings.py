"""The harness's settings: pytest options over the environment, resolved once per session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from harness import images
from harness.settings import HarnessSettings

pytestmark = pytest.mark.unit


class _Config:
    def __init__(self, **options: Any) -> None:
        self.options = options

    def getoption(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)


def test_the_environment_then_the_defaults() -> None:
    assert HarnessSettings.from_environ({}) == HarnessSettings()
    s = HarnessSettings.from_environ({
        "ARMSTACK_ARCH": "armv7", "ARMSTACK_CACHE": "/c", "ARMSTACK_IMAGE_PREFIX": "bench",
        "ARMSTACK_DEBIAN_MIRROR": "http://m/debian", "ARMSTACK_CA_BUNDLE": "/ca.crt",
        "ARMSTACK_SHARED_MOUNTS": "/run/x"})
    assert s == HarnessSettings(arch="armv7", cache=Path("/c"), image_prefix="bench", debian_mirror="http://m/debian",
                                ca_bundle=Path("/ca.crt"), shared_mounts=Path("/run/x"))


def test_pytest_options_win_over_the_environment() -> None:
    config = _Config(**{"--arch": "amd64,arm64", "--docker-host": "ssh://pi@board"})
    s = HarnessSettings.from_config(config, {"ARMSTACK_ARCH": "armv7", "ARMSTACK_IMAGE_PREFIX": "bench"})
    assert (s.arch, s.docker_host, s.image_prefix) == ("amd64,arm64", "ssh://pi@board", "bench")
    assert HarnessSettings.from_config(_Config(), {"ARMSTACK_ARCH": "armv7"}).arch == "armv7"


def test_image_functions_take_the_settings(tmp_path: Path) -> None:
    s = HarnessSettings(cache=tmp_path / "cache", image_prefix="bench", debian_mirror="http://m/debian",
                        ca_bundle=tmp_path / "ca.crt")
    (tmp_path / "ca.crt").write_bytes(b"CA")
    assert images.cache_dir(s) == tmp_path / "cache" and (tmp_path / "cache").is_dir()
    assert (images.prefix(s), images.mirror(s), images.host_ca_bundle(s)) == ("bench", "http://m/debian", b"CA")
