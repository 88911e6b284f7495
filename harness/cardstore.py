"""The card store: where device SD cards, card templates and snapshots live on the host.

A device's card is one image file (an ext4 filesystem the engine container loop-mounts). Cloning
that file is how a device starts from a prepared card: on a filesystem with reflinks
(``cp --reflink``) a clone of a 2 GB card takes milliseconds and no space until written, so
the store is an XFS filesystem in a sparse image file under the cache
(``~/.cache/armstack/cards.xfs``), loop-mounted at ``~/.cache/armstack/cards`` the first
time it is needed and left mounted for later sessions. Without ``mkfs.xfs`` the store is a plain
directory and clones are sparse copies (a fraction of a second per 400 MB of card data).

Layout (every directory 0700, every file 0600)::

    cards/devices/<device>/disk.img     the card of a running device (.owner: its process)
    cards/snapshots/<name>/disk.img     a frozen card; meta.json says what it is, stack.tar its stack
    cards/snapshots/.tmp-<name>-<id>/   a snapshot being made (renamed into place when complete)
    cards/locks/<name>.lock             flock: one maker per snapshot, no prune under a clone

Published snapshot directories never change: a device works on its own clone, and replacing a
snapshot renames a complete new directory over the old one under the snapshot's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from harness.errors import DeviceError
from harness.session import OWNER, labels, owner_alive
from harness.settings import HarnessSettings

# Sparse: only what is written takes space on the host disk. Clones share blocks.
STORE_SIZE = "256G"
CARD_FILE = "disk.img"
OWNER_FILE = ".owner"
TMP_PREFIX = ".tmp-"


def private_dir(path: Path) -> Path:
    """``path`` made (with its parents) and kept 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


@contextlib.contextmanager
def file_lock(path: Path, *, shared: bool = False) -> Iterator[None]:
    """An flock on ``path`` (created 0600): exclusive, or shared among readers."""
    private_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise DeviceError(f"{what} failed: `{' '.join(cmd)}` exited {res.returncode}: {res.stderr.strip()}")


@dataclass(frozen=True)
class CardStore:
    root: Path
    reflink: bool   # clones share blocks (XFS); otherwise they are sparse copies

    @property
    def devices(self) -> Path:
        return self.root / "devices"

    @property
    def snapshots(self) -> Path:
        return self.root / "snapshots"

    def lock(self, name: str, *, shared: bool = False) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.root / "locks" / f"{name}.lock", shared=shared)

    def clone(self, src: Path, dst: Path) -> None:
        """Copy a card file: a reflink where the store has them, else a sparse copy. ``dst`` 0600."""
        private_dir(dst.parent)
        # The card's writes reach the file through the loop device's page cache: flush them first.
        fd = os.open(src, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        how = ["--reflink=always"] if self.reflink else ["--reflink=never", "--sparse=always"]
        _run(["cp", *how, str(src), str(dst)], f"cloning card {src}")
        os.chmod(dst, 0o600)

    def device_dir(self, device: str) -> Path:
        """A new, empty card directory for a device, marked with this process as its owner."""
        path = private_dir(self.devices) / device
        path.mkdir(mode=0o700)
        owner = path / OWNER_FILE
        owner.write_text(labels()[OWNER])
        owner.chmod(0o600)
        return path

    def temp_dir(self, name: str) -> Path:
        """Where a snapshot is made before it is renamed into place (swept if its maker dies)."""
        path = private_dir(self.snapshots) / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex[:8]}"
        path.mkdir(mode=0o700)
        (path / OWNER_FILE).write_text(labels()[OWNER])
        return path

    def publish(self, tmp: Path, name: str, *, owned: bool = False) -> Path:
        """Rename a complete snapshot directory into place, replacing an older one of that name.
        ``owned``: it stays this process's (swept once the process is gone)."""
        final = self.snapshots / name
        with self.lock(name):
            old = None
            if final.exists():
                old = self.snapshots / f"{TMP_PREFIX}old-{name}-{uuid.uuid4().hex[:8]}"
                final.rename(old)
            if not owned:
                (tmp / OWNER_FILE).unlink(missing_ok=True)
            tmp.rename(final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def remove_snapshot(self, name: str) -> bool:
        final = self.snapshots / name
        with self.lock(name):   # waits for clones of it in progress
            if not final.is_dir():
                return False
            doomed = self.snapshots / f"{TMP_PREFIX}gone-{name}-{uuid.uuid4().hex[:8]}"
            final.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True

    def sweep(self, *, mine: bool = False) -> list[str]:
        """Remove device cards, half-made snapshots and owned snapshots (reset points) whose owner
        process is gone (or, with ``mine``, this process's device cards)."""
        removed = []
        me = labels()[OWNER]
        for parent in (self.devices, self.snapshots):
            if not parent.is_dir():
                continue
            for path in parent.iterdir():
                try:
                    owner = (path / OWNER_FILE).read_text()
                except OSError:
                    if parent == self.snapshots and not path.name.startswith(TMP_PREFIX):
                        continue   # a published snapshot without an owner: kept until pruned
                    owner = ""
                if (mine and owner == me and parent == self.devices) or not owner_alive(owner):
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(str(path))
        return removed


def open_store(settings: HarnessSettings | None = None, *, create: bool = True) -> CardStore | None:
    """The card store, made and mounted if needed; None where cards cannot be host files (not
    root, or switched off with ``ARMSTACK_CARD_STORE=off``). ``create=False``: only one that is
    there already (for sweeps)."""
    settings = settings if settings is not None else HarnessSettings.from_environ()
    if os.geteuid() != 0 or settings.card_store == "off":
        return None
    cache = settings.cache
    root = cache / "cards"
    image = cache / "cards.xfs"
    if not create and not (os.path.ismount(root) or image.exists() or root.is_dir()):
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with file_lock(cache / "cards.lock"):
        if not os.path.ismount(root):
            if shutil.which("mkfs.xfs") and settings.card_store != "copy":
                if not image.exists():
                    tmp = image.with_suffix(".xfs.tmp")
                    tmp.unlink(missing_ok=True)
                    _run(["truncate", "-s", STORE_SIZE, str(tmp)], "making the card store")
                    tmp.chmod(0o600)
                    _run(["mkfs.xfs", "-q", "-m", "reflink=1", "-L", "armstackcard", str(tmp)],
                         "making the card store")
                    tmp.rename(image)
                root.mkdir(mode=0o700, exist_ok=True)
                _run(["mount", "-o", "loop", str(image), str(root)], "mounting the card store")
            else:
                root.mkdir(mode=0o700, exist_ok=True)
        root.chmod(0o700)
    return CardStore(root, reflink=os.path.ismount(root))


def unmount_store(cache: Path) -> bool:
    """Unmount the card store of the cache directory ``cache``, if it is mounted; whether it was.

    The store stays mounted for later sessions; a cache that is thrown away (a benchmark's cold
    cache, a test's own home) takes its store with it, or the mount and its loop device outlive it.
    """
    root = cache / "cards"
    if not os.path.ismount(root):
        return False
    _run(["umount", str(root)], "unmounting the card store")   # mount -o loop: the loop device goes too
    return True

