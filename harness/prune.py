"""``armstack images prune``: what this version of the kit will not use again, removed.

Root filesystem tarballs, the runtime's dependency trees and the kit's images are each keyed by how
they are made (recipe, packages, sources), so a newer armstack or a change to the runtime's code
makes new ones beside the old, which then only fill the disk (a rootfs is 60-400 MB). This removes,
from the cache (``~/.cache/armstack``) and from the host engine's images labelled as the kit's under
this image prefix, those no key of this version names. Nothing else is touched: not other files in
the cache, not the device card store (``armstack images snapshots --prune``), not an image a container still uses
(the engine refuses; it is reported as kept).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from harness import images, runtimedeps
from harness.arch import ARCHES, Arch, get_arch


@dataclass
class Pruned:
    files: list[Path] = field(default_factory=list)
    freed: int = 0                                        # bytes of the files
    images: list[str] = field(default_factory=list)       # tags removed
    in_use: list[str] = field(default_factory=list)       # stale, but a container uses them

    def summary(self, dry_run: bool = False) -> str:
        verb = "would remove" if dry_run else "removed"
        lines = [f"{verb} {path}" for path in self.files] + [f"{verb} image {tag}" for tag in self.images]
        lines += [f"kept image {tag}: a container uses it" for tag in self.in_use]
        lines.append(f"{verb}: {len(self.files)} cached files ({self.freed / 1e6:.0f} MB), {len(self.images)} images")
        return "\n".join(lines)


def stale_paths(present: Iterable[Path], keep: set[Path]) -> list[Path]:
    """Of the entries ``present``, those not kept (a lock goes with the tarball it locks)."""
    kept = keep | {path.with_suffix(".lock") for path in keep}
    return sorted(path for path in present if path not in kept)


def stale_images(present: Iterable[tuple[str, list[str]]], keep: set[str]) -> list[tuple[str, list[str]]]:
    """Of the images ``present`` as (id, tags), those with no tag kept, newest first as given (an
    image is removed before the one it was built on)."""
    return [(image_id, tags) for image_id, tags in present if not set(tags) & keep]


def _arches() -> list[Arch]:
    return [get_arch(name) for name in ARCHES]


def current_cache() -> tuple[set[Path], set[Path]]:
    """The rootfs tarballs and dependency trees this version makes, for every arch."""
    rootfs = {images.rootfs_path(arch, images.BASES[kind].packages) for arch in _arches() for kind in images.BASES}
    rootfs.add(images.rootfs_path(get_arch("amd64"), images.ENGINE_PACKAGES))
    wanted = images.runtime_requirements()
    deps = {runtimedeps.tree_path(arch, wanted, images.cache_dir()) for arch in _arches()}
    return rootfs, deps


def current_tags(client: docker.DockerClient) -> set[str]:
    """The kit's image names this version uses, as they are now on the host."""
    source = images.runtime_source_hash()   # hashes every runtime file: once
    tags = {images.engine_tag(get_arch("amd64")), images.runtime_tag(get_arch("amd64"), "all-in-one", source)}
    for arch in _arches():
        tags |= {images.host_tag("debian", arch), images.runtime_tag(arch, source=source)}
        python = images.host_tag("python", arch)
        tags.add(python)
        with suppress(docker.errors.ImageNotFound):   # no python image: no dependencies image is current
            tags.add(images.runtime_deps_tag(arch, python, client)[0])
    return tags


def prune(client: docker.DockerClient | None = None, dry_run: bool = False) -> Pruned:
    client = client or docker.from_env()
    done = Pruned()
    rootfs, deps = current_cache()
    cache = images.cache_dir()
    present = [*(cache / "rootfs").glob("*.tar"), *(cache / "rootfs").glob("*.lock"),
               *(p for p in (cache / "runtime-deps").glob("*") if p.is_dir() and not p.name.startswith("."))]
    for path in stale_paths(present, rootfs | deps):
        done.freed += _size(path)
        done.files.append(path)
        if not dry_run:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    # Only images under this prefix (ARMSTACK_IMAGE_PREFIX): another prefix is another user's (a
    # benchmark's, a test session's of its own) and may be in the making right now.
    mine = f"{images.prefix()}/"
    listed = sorted((i for i in client.images.list(filters={"label": images.LABEL_KIND})
                     if any(tag.startswith(mine) for tag in i.tags)),
                    key=lambda image: image.attrs.get("Created", ""), reverse=True)
    for _, tags in stale_images(((i.id, list(i.tags)) for i in listed), current_tags(client)):
        for name in tags:
            try:
                if not dry_run:
                    client.images.remove(name, noprune=False)
                done.images.append(name)
            except docker.errors.APIError as e:
                if e.status_code != 409:
                    raise
                done.in_use.append(name)
    return done


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return path.stat().st_size
