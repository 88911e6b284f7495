"""Card templates and snapshots: a device's card frozen under a name, and devices started from it.

A **template** is the card of a device that has just started (filesystem made, base images
loaded), made once per arch, card size and set of base images, and cloned for every device
after that: the device then needs no mkfs and no image load. A **snapshot** is the card of a
device at any moment (``device.snapshot(name)``), with the stack files it runs and the stack's
name, so ``EmulatedDevice(snapshot=name)`` comes back with that stack deployed. A **reset
point** is a snapshot a device takes of itself right after its first deploy, so ``reset()``
can bring it back; it belongs to that device's process and is swept with it.

Taking one: ``sync`` and ``fsfreeze`` the card in the engine container (every write it has
accepted reaches the image file and the filesystem is clean), clone the image file, thaw. The
device keeps running; a device started from the snapshot boots like one whose power was cut
at that instant, on a clean filesystem (the runtime starts the stack again).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import tarfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cardstore import CARD_FILE, TMP_PREFIX, CardStore
from harness.errors import DeviceError
from harness.session import OWNER, labels, owner_alive
from runtime.compose.source import StackSource

if TYPE_CHECKING:
    from harness.device import EmulatedDevice

META_FILE = "meta.json"
STACK_FILE = "stack.tar"
TEMPLATE = "template"
SNAPSHOT = "snapshot"
RESET = "reset"
KINDS = (TEMPLATE, SNAPSHOT, RESET)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def check_name(name: str) -> str:
    """A snapshot name is a file name: letters, digits, ``_.-``, up to 100 characters."""
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith(TMP_PREFIX):
        raise ValueError(f"bad snapshot name {name!r}: use letters, digits, '_', '.', '-' "
                         "(up to 100 characters, starting with a letter or digit)")
    return name


def template_key(arch: str, disk: str, engine_image: str, bases: Mapping[str, str]) -> str:
    """What a template's card depends on: the engine image (it makes the filesystem) and the
    ids of the base images loaded onto it."""
    text = "|".join([arch, disk, engine_image, *(f"{k}={v}" for k, v in sorted(bases.items()))])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _source(raw: dict[str, Any]) -> StackSource | None:
    """The stack source of a snapshot's meta.json; snapshots taken before metas held one named
    the main file (``compose_path``), project and profiles apart, and still restore."""
    if raw.get("source") is not None:
        return StackSource.from_json(raw["source"])
    if raw.get("project") is None or raw.get("compose_path") is None:
        return None
    return StackSource.from_json({"paths": [raw["compose_path"]], "project": raw["project"],
                                  "profiles": raw.get("profiles") or []})


def template_name(arch: str, disk: str, key: str) -> str:
    return check_name(f"template-{arch}-{disk}-{key}")


@dataclass(frozen=True)
class SnapshotMeta:
    """What a snapshot is: written as meta.json in its directory."""

    name: str
    kind: str
    arch: str
    disk: str
    created: float
    owner: str = ""
    # The stack on the card as its runtime reads it (files on the device); None: no stack.
    source: StackSource | None = None

    @property
    def project(self) -> str | None:
        return self.source.project if self.source is not None else None

    def to_json(self) -> str:
        doc: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        doc["source"] = self.source.to_json() if self.source is not None else None
        return json.dumps(doc, indent=2)

    @classmethod
    def from_json(cls, text: str, where: str) -> SnapshotMeta:
        try:
            raw = json.loads(text)
            meta = cls(name=str(raw["name"]), kind=str(raw["kind"]), arch=str(raw["arch"]), disk=str(raw["disk"]),
                       created=float(raw["created"]), owner=str(raw.get("owner") or ""), source=_source(raw))
        except (ValueError, KeyError, TypeError) as e:
            raise DeviceError(f"{where} is not a snapshot description ({e}); remove it with "
                              "`python -m harness.cli snapshots --prune NAME`") from e
        if meta.kind not in KINDS:
            raise DeviceError(f"{where}: unknown snapshot kind {meta.kind!r}")
        return meta


def prunable(metas: Iterable[SnapshotMeta], names: Iterable[str] = ()) -> list[str]:
    """The snapshots ``snapshots --prune`` removes: the named ones, else every one whose owner
    process (if it has one) is gone. A running session's reset points are kept."""
    wanted = set(names)
    out = []
    for m in metas:
        if wanted:
            if m.name in wanted:
                out.append(m.name)
        elif m.kind != RESET or not owner_alive(m.owner):
            out.append(m.name)
    return out


def stale_templates(metas: Iterable[SnapshotMeta], current: str) -> list[str]:
    """Templates of the same arch and card size as ``current`` that it replaces."""
    head = current.rsplit("-", 1)[0] + "-"
    return [m.name for m in metas if m.kind == TEMPLATE and m.name != current and m.name.startswith(head)]


# ---- the store side -------------------------------------------------------------------------

def read_meta(store: CardStore, name: str) -> SnapshotMeta | None:
    path = store.snapshots / name / META_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return SnapshotMeta.from_json(text, str(path))


def list_snapshots(store: CardStore) -> list[tuple[SnapshotMeta, int]]:
    """Every published snapshot with the bytes its card uses on the host (shared blocks counted
    in each)."""
    out = []
    if store.snapshots.is_dir():
        for path in sorted(store.snapshots.iterdir()):
            if path.name.startswith(TMP_PREFIX):
                continue
            meta = read_meta(store, path.name)
            if meta is None:
                continue
            try:
                used = (path / CARD_FILE).stat().st_blocks * 512
            except OSError:
                used = 0
            out.append((meta, used))
    return out


def restore_card(store: CardStore, name: str, dest: Path) -> SnapshotMeta:
    """Clone a snapshot's card to ``dest``/disk.img (replacing what is there); its description."""
    if read_meta(store, check_name(name)) is None:
        known = ", ".join(m.name for m, _ in list_snapshots(store)) or "none"
        raise DeviceError(f"no snapshot named {name!r} in {store.snapshots} (there are: {known})")
    tmp = dest / f"{CARD_FILE}.{uuid.uuid4().hex[:8]}"
    meta = restore_card_to(store, name, tmp)
    tmp.rename(dest / CARD_FILE)
    return meta


def stack_archive(store: CardStore, name: str) -> bytes | None:
    path = store.snapshots / name / STACK_FILE
    return path.read_bytes() if path.exists() else None


# ---- the device side ------------------------------------------------------------------------

@contextlib.contextmanager
def frozen_card(device: EmulatedDevice) -> Any:
    """The device's card flushed and frozen (writes wait) for the duration of the block."""
    device.shell("sync && fsfreeze -f /data")
    try:
        yield
    finally:
        device.shell("fsfreeze -u /data", check=False)


def take(device: EmulatedDevice, store: CardStore, name: str, kind: str = SNAPSHOT) -> SnapshotMeta:
    """Freeze the device's card as snapshot ``name`` (replacing one of that name)."""
    from harness.device import STACKS_DIR

    check_name(name)
    card = device.card_dir
    if card is None:
        raise DeviceError(f"device {device.name} has no card in the card store (not root, or "
                          "ARMSTACK_CARD_STORE=off): it cannot be snapshotted")
    tmp = store.temp_dir(name)
    try:
        if device.project is not None:
            bits, _ = device.engine_container().get_archive(STACKS_DIR + "/.")
            (tmp / STACK_FILE).write_bytes(b"".join(bits))
            (tmp / STACK_FILE).chmod(0o600)
        with frozen_card(device):
            store.clone(card / CARD_FILE, tmp / CARD_FILE)
        meta = SnapshotMeta(name=name, kind=kind, arch=device.arch.name, disk=device.disk, created=time.time(),
                            owner=labels()[OWNER] if kind == RESET else "", source=device.source)
        (tmp / META_FILE).write_text(meta.to_json())
        (tmp / META_FILE).chmod(0o600)
        store.publish(tmp, name, owned=kind == RESET)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return meta


def ensure_template(store: CardStore, arch: str, disk: str, preload: tuple[str, ...], key: str) -> str:
    """The name of the card template for these settings, making it first if there is none.

    Made once by one process: others wait on its lock, then clone it. It is made in a temporary
    directory and renamed into place only when complete, so an interrupted build leaves nothing
    a later run would use.
    """
    from harness.device import EmulatedDevice
    from harness.progress import step

    name = template_name(arch, disk, key)
    if read_meta(store, name) is not None:
        return name
    with store.lock(f"make-{name}"):
        if read_meta(store, name) is not None:
            return name
        with (step(f"card template {name} (once per arch and card size)"),
              EmulatedDevice(arch=arch, disk=disk, preload=preload, template=False) as device):
            take(device, store, name, TEMPLATE)
        for old in stale_templates((m for m, _ in list_snapshots(store)), name):
            store.remove_snapshot(old)
    return name


def put_stack(device: EmulatedDevice, data: bytes) -> None:
    """Replace the stack files on the device with a snapshot's."""
    from harness.device import STACKS_DIR

    device.shell(f"rm -rf {STACKS_DIR} && mkdir -p {STACKS_DIR}")
    device.engine_container().put_archive(STACKS_DIR, data)


def stack_files(data: bytes) -> list[str]:
    """Names in a stack archive (for messages and tests)."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getnames()


RESET_MOUNT = "/run/armstack-reset"   # in the engine container: the reset point's card, read-only


def reset_in_place(device: EmulatedDevice, store: CardStore, name: str) -> SnapshotMeta:
    """Bring a running device back to snapshot ``name`` without restarting what is as it was.

    The snapshot's card is cloned next to the device's and mounted read-only in the engine
    container; every stack volume whose files differ is copied back (its containers removed
    first), containers that are not running are removed and fill files go. The device then puts
    the stack files back and has the runtime forget its services' history (or starts it afresh):
    it adopts the containers that kept running and creates the removed ones as on a first
    deploy (EmulatedDevice.reset). What cannot be judged in
    place (the engine not answering, a different stack) raises DeviceError; ``reset(full=True)``
    restores the whole card instead.
    """
    from harness.device import STACK_LABEL

    card = device.card_dir
    assert card is not None
    engine = device.engine   # raises if the engine container is gone
    engine.ping()
    ref = card / f"reset-{uuid.uuid4().hex[:8]}.img"
    meta = restore_card_to(store, name, ref)
    if meta.project != device.project or meta.project is None:
        ref.unlink(missing_ok=True)
        raise DeviceError(f"snapshot {name!r} holds stack {meta.project!r}, the device runs {device.project!r}")
    try:
        device.shell(f"mkdir -p {RESET_MOUNT} && mount -o loop,ro,noload /sdcard/{ref.name} {RESET_MOUNT}")
        try:
            label = {"label": f"{STACK_LABEL}={meta.project}"}
            for c in engine.containers.list(all=True, filters=label):
                if c.status != "running":
                    c.remove(force=True)
            for vol in engine.volumes.list(filters=label):
                src, dst = f"{RESET_MOUNT}/volumes/{vol.name}/_data", f"/var/lib/docker/volumes/{vol.name}/_data"
                if device.shell(f"diff -rq --no-dereference {src} {dst} >/dev/null 2>&1", check=False).exit_code == 0:
                    continue
                for c in engine.containers.list(all=True, filters={"volume": vol.name}):
                    c.remove(force=True)
                device.shell(f"find {dst} -mindepth 1 -delete && cp -a {src}/. {dst}/")
            device.shell("rm -f /data/armstack-fill.*")
        finally:
            device.shell(f"umount {RESET_MOUNT}", check=False)
    finally:
        ref.unlink(missing_ok=True)
    return meta


def restore_card_to(store: CardStore, name: str, path: Path) -> SnapshotMeta:
    """Clone snapshot ``name``'s card to the file ``path``."""
    check_name(name)
    with store.lock(name, shared=True):
        meta = read_meta(store, name)
        if meta is None:
            raise DeviceError(f"no snapshot named {name!r} in {store.snapshots}")
        store.clone(store.snapshots / name / CARD_FILE, path)
    return meta
