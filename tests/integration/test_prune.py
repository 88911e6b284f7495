"""``armstack images prune`` on the real engine: stale kit images go, current and used ones stay.

Everything here lives under an image prefix of its own (``ARMSTACK_IMAGE_PREFIX``) and carries the
suite's test label; prune judges only its prefix's images, so nothing else on the host is touched.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import pytest

from harness import images
from harness.arch import get_arch

TEST_LABEL = {"io.armstack.test": "1"}


def _image(client: docker.DockerClient, tag: str) -> None:
    dockerfile = io.BytesIO(b"FROM scratch\nLABEL io.armstack.base=test\n")
    # A label of its own: images of the same content would be one image under three names.
    client.images.build(fileobj=dockerfile, tag=tag, labels={**TEST_LABEL, "io.armstack.test.tag": tag}, rm=True)


def test_prune_removes_stale_kit_images_of_its_prefix_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prefix = f"armstack-prune-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("ARMSTACK_IMAGE_PREFIX", prefix)
    monkeypatch.setenv("ARMSTACK_CACHE", str(tmp_path))
    client = docker.from_env()
    current = images.host_tag("debian", get_arch("arm64"))
    stale, used = f"{prefix}/runtime:0000000000000000-arm64", f"{prefix}/runtime:1111111111111111-arm64"
    made = [current, stale, used]
    container = None
    try:
        for tag in made:
            _image(client, tag)
        container = client.containers.create(used, command=["none"], labels=TEST_LABEL)
        stale_rootfs = tmp_path / "rootfs" / "bookworm-arm64-0123456789abcdef.tar"
        stale_rootfs.parent.mkdir()
        stale_rootfs.write_bytes(b"old")
        out = subprocess.run([sys.executable, "-m", "runtime.cli", "images", "prune"],
                             capture_output=True, text=True, check=True).stdout
        assert f"removed image {stale}" in out and f"kept image {used}: a container uses it" in out
        assert f"removed {stale_rootfs}" in out and not stale_rootfs.exists()
        left = {tag for image in client.images.list(name=prefix + "/*") for tag in image.tags}
        assert current in left and used in left and stale not in left
    finally:
        if container is not None:
            container.remove(force=True)
        for tag in made:
            with contextlib.suppress(docker.errors.ImageNotFound):
                client.images.remove(tag, force=True)
