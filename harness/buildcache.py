"""Build reuse across devices and sessions: a host-side cache of stack images, keyed by
(arch, build-input hash).

The runtime builds a service only when no image carries the service's name with a
``io.armstack.build-hash`` label equal to the hash of its build inputs (runtime.planner). So
after a device has built a stack, its images are saved from the device's engine to
``~/.cache/armstack/builds/<arch>/<hash>.tar`` (+ ``.json``), and before a later device deploys
the same inputs they are loaded into its engine and tagged: its runtime finds them and builds
nothing.

An entry holds the image and its whole parent chain (the classic builder's intermediate
images, parent links kept): a Dockerfile changed at a later line then rebuilds from those
layers on the next device, not from the base. Layers of the preloaded base images are left out
of the tar (every device has them; loading skips a layer it has, so it never opens its file),
which keeps an entry at the size of what the build added.
"""

from __future__ import annotations

import contextlib
import json
import os
import tarfile
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import docker.errors

from harness.cardstore import file_lock, private_dir
from harness.progress import step
from harness.settings import HarnessSettings
from runtime.labels import BUILD_HASH

if TYPE_CHECKING:
    from harness.device import EmulatedDevice
    from runtime.compose.source import StackSource



def entry(arch: str, build_hash: str, settings: HarnessSettings | None = None) -> Path:
    """The cache file of one build (its ``.json`` sibling is written last: no json, no entry)."""
    if not build_hash.isalnum():
        raise ValueError(f"bad build hash {build_hash!r}")
    root = (settings or HarnessSettings.from_environ()).cache / "builds" / arch
    return root / f"{build_hash}.tar"


def split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` as (repo, tag), a registry port not taken for a tag."""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


def base_chains(layer_lists: Iterable[Sequence[str]]) -> set[tuple[str, ...]]:
    """Every layer prefix of the base images: a layer whose chain is one of these is on every device."""
    return {tuple(layers[:i + 1]) for layers in layer_lists for i in range(len(layers))}


def droppable_layers(manifest: list[dict[str, Any]], diff_ids: dict[str, list[str]],
                     bases: set[tuple[str, ...]]) -> set[str]:
    """Layer files of a ``docker save`` manifest that only hold base-image layers.

    ``diff_ids`` maps each manifest item's ``Config`` to its config's ``rootfs.diff_ids``. A
    file is dropped only if every use of it is a base-image chain."""
    keep: set[str] = set()
    drop: set[str] = set()
    for item in manifest:
        ids = diff_ids[item["Config"]]
        for i, layer in enumerate(item["Layers"]):
            (drop if tuple(ids[:i + 1]) in bases else keep).add(layer)
    return drop - keep


def strip_base_layers(full: Path, out: Path, bases: set[tuple[str, ...]]) -> None:
    """Copy a ``docker save`` tar leaving out the layer files of base-image layers."""
    with tarfile.open(full) as src:
        manifest = json.load(_member(src, "manifest.json"))
        diff_ids = {item["Config"]: json.load(_member(src, item["Config"]))["rootfs"]["diff_ids"]
                    for item in manifest}
        drop = droppable_layers(manifest, diff_ids, bases)
        with tarfile.open(out, "w") as dst:
            for member in src:
                if member.name in drop:
                    continue
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)


def _member(tar: tarfile.TarFile, name: str) -> Any:
    f = tar.extractfile(name)
    if f is None:
        raise ValueError(f"{name} is not a file in the image archive")
    return f


def _built_services(source: StackSource) -> list[tuple[str, str]]:
    """(service, image ref) of every service of the stack ``source`` names that has a build section."""
    from runtime.compose.loader import load_source
    from runtime.errors import ComposeError

    try:
        stack = load_source(source).stack
    except (ComposeError, OSError):
        return []
    return [(s.name, stack.image_ref(s.name)) for s in stack.services if s.build is not None]


def preload(device: EmulatedDevice, source: StackSource) -> list[str]:
    """Load cached builds of the stack ``source`` names (host side) into the device's engine; the
    services whose image came ready (built under the same inputs, tagged as the runtime looks for).

    A service whose inputs changed gets its newest earlier build loaded untagged: the runtime
    builds it, and the classic builder finds the unchanged steps in that image's parent chain.
    """
    from runtime.compose.loader import load_source
    from runtime.desired import make_desired
    from runtime.errors import ComposeError

    try:
        stack = load_source(source).stack
    except (ComposeError, OSError):
        return []   # the deploy reports it
    engine = device.engine
    desired = make_desired(engine, stack)   # hashed as the runtime hashes: the engine's base ids
    ready = []
    for service, want in desired.build_hashes:
        ref = stack.image_ref(service)
        if _has(engine, ref, want):
            continue
        exact = entry(device.arch.name, want).with_suffix(".json").exists()
        path = entry(device.arch.name, want) if exact else latest(device.arch.name, ref)
        if path is None:
            continue
        info = json.loads(path.with_suffix(".json").read_text())
        what = "cached build" if exact else "earlier build (layer cache)"
        try:
            with step(f"load {what} of {service} ({device.arch.name})"), open(path, "rb") as f:
                engine.api.load_image(f)
            if exact:
                repo, tag = split_ref(ref)
                engine.api.tag(info["image"], repo, tag=tag)
        except (docker.errors.APIError, OSError):
            continue   # e.g. a base image this entry left out is missing: the runtime builds
        if exact:
            ready.append(service)
    return ready


def entries(arch: str, ref: str, settings: HarnessSettings | None = None) -> list[Path]:
    """The cache entries (their tars) of image ``ref``, whatever their build hash, oldest first."""
    root = entry(arch, "x", settings).parent
    found: list[tuple[float, Path]] = []
    for info in root.glob("*.json") if root.is_dir() else ():
        try:
            if json.loads(info.read_text()).get("ref") != ref:
                continue
            found.append((info.stat().st_mtime, info.with_suffix(".tar")))
        except (OSError, ValueError):
            continue
    return [path for _, path in sorted(found)]


def latest(arch: str, ref: str, settings: HarnessSettings | None = None) -> Path | None:
    """The newest cache entry (its tar) of image ``ref``, whatever its build hash."""
    found = entries(arch, ref, settings)
    return found[-1] if found else None


def forget(arch: str, refs: Iterable[str], settings: HarnessSettings | None = None) -> list[Path]:
    """Remove every cache entry of the images ``refs``, earlier builds too (whose layers a changed
    build would start from): the next device builds them from nothing. The tars removed."""
    removed = []
    for ref in refs:
        for path in entries(arch, ref, settings):
            with file_lock(path.with_suffix(".lock")):   # not under a store() of the same entry
                path.with_suffix(".json").unlink(missing_ok=True)   # first: no json, no entry
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def built_images(source: StackSource) -> list[str]:
    """The image refs of the services with a build section of the stack ``source`` names (host side)."""
    return [ref for _, ref in _built_services(source)]


def _has(engine: Any, ref: str, build_hash: str) -> bool:
    try:
        return bool((engine.images.get(ref).labels or {}).get(BUILD_HASH) == build_hash)
    except docker.errors.ImageNotFound:
        return False


def _chain(engine: Any, image_id: str) -> list[str]:
    """The image and its parents (the classic builder's intermediate images), newest first."""
    out = []
    current = image_id
    while current and current not in out:
        out.append(current)
        try:
            current = engine.api.inspect_image(current).get("Parent") or ""
        except docker.errors.ImageNotFound:
            break
    return out


def store(device: EmulatedDevice, source: StackSource) -> list[str]:
    """Save the images the device's runtime built for the stack ``source`` names (host side) that
    the cache lacks; the hashes saved."""
    from harness.images import BASES

    engine = device.engine
    saved = []
    bases = []
    for kind in device.preload:
        with contextlib.suppress(docker.errors.ImageNotFound):
            bases.append(engine.images.get(BASES[kind].official[0]).attrs["RootFS"]["Layers"])
    chains = base_chains(bases)
    for _, ref in _built_services(source):
        try:
            image = engine.images.get(ref)
        except docker.errors.ImageNotFound:
            continue
        build_hash = (image.labels or {}).get(BUILD_HASH)
        if not build_hash or not build_hash.isalnum():
            continue
        path = entry(device.arch.name, build_hash)
        info = path.with_suffix(".json")
        if info.exists():
            continue
        private_dir(path.parent)
        with file_lock(path.with_suffix(".lock")):
            if info.exists():
                continue
            with step(f"save build {ref} ({device.arch.name}, {build_hash}) to the build cache"):
                _save(engine, _chain(engine, image.id), path, chains)
                tmp = info.with_suffix(".json.tmp")
                tmp.write_text(json.dumps({"image": image.id, "ref": ref}))
                os.chmod(tmp, 0o600)
                tmp.rename(info)
        saved.append(build_hash)
    return saved


def _save(engine: Any, ids: list[str], out: Path, chains: set[tuple[str, ...]]) -> None:
    """``docker save`` of several images at once (so their parent links are kept), stripped."""
    api = engine.api
    # docker-py saves one image per call; the engine's endpoint takes several names.
    res = api._get(api._url("/images/get"), params={"names": ids}, stream=True)
    api._raise_for_status(res)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        full = Path(tmp) / "full.tar"
        with open(full, "wb") as f:
            for chunk in res.iter_content(chunk_size=1 << 20):
                f.write(chunk)
        part = Path(tmp) / "stripped.tar"
        strip_base_layers(full, part, chains)
        os.chmod(part, 0o600)
        part.rename(out)

