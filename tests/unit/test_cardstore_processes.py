"""The card store across processes: sessions one after the other, workers at the same time, a
maker killed half-way. Each side is a separate Python process (``spawn``: its own pid, so its
own owner label) on a card store in a temporary directory; devices are stand-ins that hand over
a card file, so no Docker and no emulation."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import threading
import types
from pathlib import Path
from typing import Any

import pytest

from harness import snapshots
from harness.cardstore import CARD_FILE, TMP_PREFIX, CardStore
from harness.errors import DeviceError
from harness.waits import wait_for
from runtime.compose.source import StackSource

CARD = b"template card " * 4096 + b"end"   # what the stand-in device's card holds
ARCH, DISK, KEY = "arm64", "2G", "k1"
SPAWN = multiprocessing.get_context("spawn")


def _store(root: str | Path) -> CardStore:
    return CardStore(Path(root), reflink=False)


class _Device:
    """What ``ensure_template`` and ``snapshots.take`` use of an EmulatedDevice: a card file.

    ``_Device.work`` (a directory) is where each build leaves ``built-<pid>`` and its card;
    ``_Device.hold_until`` (a list of paths) holds the build until those files exist."""

    work: Path
    hold_until: list[Path] = []

    def __init__(self, arch: str, disk: str, **kw: Any) -> None:
        from harness.arch import get_arch

        self.arch, self.disk = get_arch(arch), disk
        self.project: str | None = None
        self.source: StackSource | None = None
        self.card_dir = self.work / f"card-{os.getpid()}"

    def __enter__(self) -> _Device:
        (self.work / f"built-{os.getpid()}").write_text("")
        wait_for(lambda: all(p.exists() for p in self.hold_until), 30, "the other workers to ask for the template")
        self.card_dir.mkdir(exist_ok=True)
        (self.card_dir / CARD_FILE).write_bytes(CARD)
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def shell(self, cmd: str, check: bool = True) -> None:
        pass   # sync, fsfreeze: nothing to flush in a plain file


def _use_stand_in(work: str, hold_until: tuple[str, ...] = ()) -> None:
    """In a worker process: devices are stand-ins, in place of harness.device (not imported: a
    worker starts in a fraction of the time without Docker's client and testcontainers)."""
    _Device.work, _Device.hold_until = Path(work), [Path(p) for p in hold_until]
    stand_in = types.ModuleType("harness.device")
    stand_in.EmulatedDevice = _Device        # type: ignore[attr-defined]
    stand_in.STACKS_DIR = "/srv/armstack/stacks"   # type: ignore[attr-defined]
    sys.modules["harness.device"] = stand_in


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(target: Any, *args: Any) -> None:
    """Run ``target(*args)`` in a new process; fail with its exit code if it fails."""
    p = SPAWN.Process(target=target, args=args)
    p.start()
    p.join(120)
    assert p.exitcode == 0, f"{target.__name__} exited {p.exitcode}"


def _read(path: Path) -> str | None:
    return path.read_text() or None if path.exists() else None


def _builds(work: Path) -> list[str]:
    return sorted(p.name for p in work.iterdir() if p.name.startswith("built-"))


# ---- (a) a snapshot outlives the session that made it ---------------------------------------

def _first_session(root: str, work: str) -> None:
    _use_stand_in(work)
    store = _store(root)
    name = snapshots.ensure_template(store, ARCH, DISK, (), KEY)
    device = _Device(ARCH, DISK)   # the card the template was made from: a device of this session
    snapshots.take(device, store, "kept", snapshots.SNAPSHOT)    # type: ignore[arg-type]
    snapshots.take(device, store, "reset-x", snapshots.RESET)    # type: ignore[arg-type]  # its reset point
    store.sweep(mine=True)   # what the session's end removes (harness.device.sweep_card_directories)
    assert snapshots.read_meta(store, name) is not None


def _next_session(root: str, work: str, out: str) -> None:
    _use_stand_in(work)
    store = _store(root)
    store.sweep()            # what a new session removes first: what dead processes left
    name = snapshots.ensure_template(store, ARCH, DISK, (), KEY)
    card = store.device_dir("next-device")
    meta = snapshots.restore_card(store, "kept", card)
    Path(out).write_text("\n".join([name, meta.kind, _digest(card / CARD_FILE),
                                    *sorted(m.name for m, _ in snapshots.list_snapshots(store))]))


def test_a_snapshot_outlives_the_session_that_made_it_and_the_next_one_uses_it(tmp_path: Path) -> None:
    root, work, out = tmp_path / "cards", tmp_path / "work", tmp_path / "out"
    work.mkdir()
    _run(_first_session, str(root), str(work))
    assert len(_builds(work)) == 1
    _run(_next_session, str(root), str(work), str(out))
    name, kind, digest, *listed = out.read_text().splitlines()
    assert len(_builds(work)) == 1, "the next session built the template again instead of using it"
    assert name == snapshots.template_name(ARCH, DISK, KEY) and kind == snapshots.SNAPSHOT
    assert digest == hashlib.sha256(CARD).hexdigest()
    # The named snapshot and the template stay; the first session's reset point went with it.
    assert listed == ["kept", name]


# ---- (b) workers cloning one template at the same time ------------------------------------

def _worker(root: str, work: str, index: int, workers: int, start: Any, out: str) -> None:
    arrived = tuple(str(Path(work) / f"arrived-{i}") for i in range(workers))
    _use_stand_in(work, arrived)
    store = _store(root)
    start.wait(60)
    Path(arrived[index]).write_text("")
    name = snapshots.ensure_template(store, ARCH, DISK, (), KEY)
    card = store.device_dir(f"device-{index}")
    start.wait(60)   # every worker clones at once
    snapshots.restore_card(store, name, card)
    with open(card / CARD_FILE, "r+b") as f:   # and changes its own card
        f.write(f"worker {index}".encode())
    Path(out).write_text(name)


def test_parallel_workers_make_the_template_once_and_clone_it_without_colliding(tmp_path: Path) -> None:
    root, work = tmp_path / "cards", tmp_path / "work"
    work.mkdir()
    workers = 4
    start = SPAWN.Barrier(workers)
    procs = [SPAWN.Process(target=_worker, args=(str(root), str(work), i, workers, start, str(tmp_path / f"out-{i}")))
             for i in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * workers
    # Every worker asked for the template before any finished it (the stand-in build waits for
    # them): one built it, the others waited on its lock and cloned it.
    assert len(_builds(work)) == 1
    name = snapshots.template_name(ARCH, DISK, KEY)
    assert {(tmp_path / f"out-{i}").read_text() for i in range(workers)} == {name}
    store = _store(root)
    assert _digest(store.snapshots / name / CARD_FILE) == hashlib.sha256(CARD).hexdigest()
    for i in range(workers):
        data = (store.devices / f"device-{i}" / CARD_FILE).read_bytes()
        assert data.startswith(f"worker {i}".encode()) and data[len(f"worker {i}"):] == CARD[len(f"worker {i}"):]
    assert [m.name for m, _ in snapshots.list_snapshots(store)] == [name]
    assert not [p for p in store.snapshots.iterdir() if p.name.startswith(TMP_PREFIX)]
    assert not [p for p in (store.devices / f"device-{i}" for i in range(workers)) if len(list(p.iterdir())) != 2]


# ---- (c) a template build killed half-way ---------------------------------------------------

def _killed_while_cloning(root: str, work: str) -> None:
    _use_stand_in(work)
    store = _store(root)

    def half_then_hang(self: CardStore, src: Path, dst: Path) -> None:
        dst.write_bytes(src.read_bytes()[: len(CARD) // 2])
        (Path(work) / "half-written").write_text(str(dst))
        threading.Event().wait()   # until killed

    CardStore.clone = half_then_hang   # type: ignore[method-assign]
    snapshots.ensure_template(store, ARCH, DISK, (), KEY)


def test_a_template_build_killed_half_way_leaves_nothing_a_later_run_uses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import harness.device

    root, work = tmp_path / "cards", tmp_path / "work"
    work.mkdir()
    maker = SPAWN.Process(target=_killed_while_cloning, args=(str(root), str(work)))
    maker.start()
    try:
        half = Path(wait_for(lambda: _read(work / "half-written"), 60, "the template build to be half-way"))
    finally:
        os.kill(maker.pid, signal.SIGKILL)   # type: ignore[arg-type]
        maker.join(30)
    assert half.exists() and half.stat().st_size == len(CARD) // 2   # the half-made card is there...
    store = _store(root)
    name = snapshots.template_name(ARCH, DISK, KEY)
    assert snapshots.read_meta(store, name) is None and snapshots.list_snapshots(store) == []   # ...unseen
    with pytest.raises(DeviceError, match="no snapshot named"):
        snapshots.restore_card(store, name, store.device_dir("d"))

    # A later run (this process) builds the template whole instead of using the half one.
    monkeypatch.setattr(_Device, "work", work, raising=False)
    monkeypatch.setattr(harness.device, "EmulatedDevice", _Device)
    before = len(_builds(work))
    assert snapshots.ensure_template(store, ARCH, DISK, (), KEY) == name
    assert len(_builds(work)) == before + 1
    card = store.device_dir("later")
    snapshots.restore_card(store, name, card)
    assert (card / CARD_FILE).read_bytes() == CARD
    assert str(half.parent) in store.sweep()   # its maker is dead: swept
    assert not half.parent.exists()
