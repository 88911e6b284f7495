"""``armstack images prune``: which cached files and kit images are stale, and what it removes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from harness import images, prune
from harness.arch import get_arch

pytestmark = pytest.mark.unit


def test_a_stale_tarball_goes_with_its_lock_and_a_kept_one_keeps_it() -> None:
    keep, old = Path("/c/rootfs/a.tar"), Path("/c/rootfs/b.tar")
    present = [keep, keep.with_suffix(".lock"), old, old.with_suffix(".lock")]
    assert prune.stale_paths(present, {keep}) == [Path("/c/rootfs/b.lock"), old]


def test_an_image_with_any_kept_tag_is_not_stale() -> None:
    present = [("sha:1", ["p/runtime:new-arm64"]), ("sha:2", ["p/runtime:old-arm64", "p/runtime:older-arm64"]),
               ("sha:3", ["p/debian:x", "p/debian:old"])]
    assert prune.stale_images(present, {"p/runtime:new-arm64", "p/debian:x"}) == [present[1]]


@dataclass
class FakeImage:
    id: str
    tags: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


class Response:
    status_code = 409
    reason = "Conflict"
    url = "http://engine/images"


class FakeImages:
    def __init__(self, listed: list[FakeImage], used: set[str]) -> None:
        self.listed, self.used = listed, used
        self.removed: list[str] = []

    def list(self, filters: dict[str, str]) -> list[FakeImage]:
        assert filters == {"label": images.LABEL_KIND}
        return self.listed

    def get(self, tag: str) -> FakeImage:
        raise docker.errors.ImageNotFound(tag)

    def remove(self, name: str, noprune: bool = False) -> None:
        if name in self.used:
            raise docker.errors.APIError("image is being used by a container", response=Response())
        self.removed.append(name)


class FakeClient:
    def __init__(self, listed: list[FakeImage], used: set[str] | None = None) -> None:
        self.images = FakeImages(listed, used or set())


def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, Path, Path]:
    monkeypatch.setenv("ARMSTACK_CACHE", str(tmp_path))
    monkeypatch.setenv("ARMSTACK_IMAGE_PREFIX", "t")
    current = images.rootfs_path(get_arch("armv7"), images.BASES["python"].packages)
    current.parent.mkdir(parents=True)
    current.write_bytes(b"x" * 10)
    current.with_suffix(".lock").touch()
    old = current.parent / "bookworm-armv7-0123456789abcdef.tar"
    old.write_bytes(b"y" * 1000)
    rootfs_deps, deps = prune.current_cache()
    kept_deps = sorted(deps)[0]
    (kept_deps / "site-packages").mkdir(parents=True)
    stale_deps = kept_deps.parent / "arm64-0000000000000000"
    (stale_deps / "site-packages").mkdir(parents=True)
    (stale_deps / "site-packages" / "m.py").write_bytes(b"z" * 100)
    making = kept_deps.parent / ".arm64-0000-being-made"   # another process's work in progress
    making.mkdir()
    return current, old, stale_deps, making


def test_prune_removes_what_no_key_names_and_keeps_the_rest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current, old, stale_deps, making = _cache(tmp_path, monkeypatch)
    engine = images.engine_tag(get_arch("amd64"))
    listed = [FakeImage("sha:5", ["t/runtime:0000-arm64"]), FakeImage("sha:4", [engine]),
              FakeImage("sha:3", ["t/python:old-arm64"]), FakeImage("sha:2", ["other/runtime:0000-arm64"])]
    client = FakeClient(listed, used={"t/python:old-arm64"})
    done = prune.prune(client)
    assert done.files == sorted([old, stale_deps]) and done.freed == 1100
    assert current.exists() and current.with_suffix(".lock").exists() and making.exists()
    assert not old.exists() and not stale_deps.exists()
    # Another prefix's images are not ours to judge; one a container uses stays.
    assert client.images.removed == ["t/runtime:0000-arm64"] and done.in_use == ["t/python:old-arm64"]
    assert "removed: 2 cached files (0 MB), 1 images" in done.summary()
    assert "kept image t/python:old-arm64: a container uses it" in done.summary()


def test_a_dry_run_removes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    current, old, stale_deps, _ = _cache(tmp_path, monkeypatch)
    client = FakeClient([FakeImage("sha:5", ["t/runtime:0000-arm64"])])
    done = prune.prune(client, dry_run=True)
    assert old.exists() and stale_deps.exists() and client.images.removed == []
    assert done.files == sorted([old, stale_deps]) and done.images == ["t/runtime:0000-arm64"]
    assert done.summary(dry_run=True).startswith("would remove ")
