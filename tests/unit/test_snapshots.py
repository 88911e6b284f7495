"""Card store, snapshot descriptions and the build cache's tar surgery: plain files, no Docker."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import socket
import tarfile
import time
from pathlib import Path

import pytest

from harness import buildcache, snapshots
from harness.cardstore import CARD_FILE, OWNER_FILE, CardStore, file_lock
from harness.errors import DeviceError
from harness.session import OWNER, labels
from runtime.compose.source import StackSource


def _store(tmp_path: Path) -> CardStore:
    return CardStore(tmp_path / "cards", reflink=False)


def _card(path: Path, data: bytes = b"card") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.seek(8 << 20)          # a hole, as in a real card image
        f.write(b"end")
    return path


def _publish(store: CardStore, name: str, data: bytes = b"card", kind: str = snapshots.SNAPSHOT,
             owner: str = "") -> None:
    tmp = store.temp_dir(name)
    _card(tmp / CARD_FILE, data)
    meta = snapshots.SnapshotMeta(name=name, kind=kind, arch="arm64", disk="2G", created=time.time(), owner=owner)
    (tmp / snapshots.META_FILE).write_text(meta.to_json())
    store.publish(tmp, name)


@pytest.mark.parametrize("name", ["a", "minimal-deployed", "t.1_x", "A" * 100])
def test_good_snapshot_names(name: str) -> None:
    assert snapshots.check_name(name) == name


@pytest.mark.parametrize("name", ["", "-x", ".hidden", "a/b", "../up", "a b", "A" * 101, ".tmp-x"])
def test_bad_snapshot_names_are_refused_with_what_is_allowed(name: str) -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        snapshots.check_name(name)


def test_template_key_follows_every_input() -> None:
    base = snapshots.template_key("arm64", "2G", "sha256:e", {"python": "sha256:p", "debian": "sha256:d"})
    assert base == snapshots.template_key("arm64", "2G", "sha256:e", {"debian": "sha256:d", "python": "sha256:p"})
    for changed in (snapshots.template_key("armv7", "2G", "sha256:e", {"python": "sha256:p", "debian": "sha256:d"}),
                    snapshots.template_key("arm64", "1G", "sha256:e", {"python": "sha256:p", "debian": "sha256:d"}),
                    snapshots.template_key("arm64", "2G", "sha256:E", {"python": "sha256:p", "debian": "sha256:d"}),
                    snapshots.template_key("arm64", "2G", "sha256:e", {"python": "sha256:p"})):
        assert changed != base
    assert snapshots.template_name("arm64", "2G", base) == f"template-arm64-2G-{base}"


def test_meta_round_trip_and_a_clear_error_for_a_damaged_one() -> None:
    source = StackSource(("/srv/armstack/stacks/minimal/compose.yaml",), "minimal", ("debug",))
    meta = snapshots.SnapshotMeta(name="s", kind=snapshots.SNAPSHOT, arch="arm64", disk="2G", created=1.0,
                                  source=source)
    assert snapshots.SnapshotMeta.from_json(meta.to_json(), "x") == meta
    assert meta.project == "minimal"
    # A meta.json from before snapshots held the source: the same stack, read from its loose fields.
    older = {**{k: v for k, v in json.loads(meta.to_json()).items() if k != "source"}, "project": "minimal",
             "compose_path": source.paths[0], "profiles": ["debug"]}
    assert snapshots.SnapshotMeta.from_json(json.dumps(older), "x") == meta
    template = snapshots.SnapshotMeta("t", snapshots.TEMPLATE, "arm64", "2G", 0.0)
    assert snapshots.SnapshotMeta.from_json(template.to_json(), "x").source is None
    with pytest.raises(DeviceError, match="/some/meta.json is not a snapshot description"):
        snapshots.SnapshotMeta.from_json('{"name": "s"}', "/some/meta.json")
    with pytest.raises(DeviceError, match="unknown snapshot kind"):
        snapshots.SnapshotMeta.from_json(json.dumps({**json.loads(meta.to_json()), "kind": "odd"}), "x")


def test_prune_keeps_the_reset_points_of_live_processes() -> None:
    me, dead = labels()[OWNER], f"{socket.gethostname()}:999999999"
    metas = [snapshots.SnapshotMeta("t", snapshots.TEMPLATE, "arm64", "2G", 0.0),
             snapshots.SnapshotMeta("s", snapshots.SNAPSHOT, "arm64", "2G", 0.0),
             snapshots.SnapshotMeta("mine", snapshots.RESET, "arm64", "2G", 0.0, owner=me),
             snapshots.SnapshotMeta("dead", snapshots.RESET, "arm64", "2G", 0.0, owner=dead)]
    assert snapshots.prunable(metas) == ["t", "s", "dead"]
    assert snapshots.prunable(metas, ["s", "mine"]) == ["s", "mine"]


def test_a_new_template_replaces_older_ones_of_its_arch_and_size_only() -> None:
    metas = [snapshots.SnapshotMeta(n, snapshots.TEMPLATE, "arm64", "2G", 0.0)
             for n in ("template-arm64-2G-aaa", "template-arm64-2G-bbb", "template-arm64-1G-aaa",
                       "template-armv7-2G-aaa")]
    metas.append(snapshots.SnapshotMeta("template-arm64-2G-user", snapshots.SNAPSHOT, "arm64", "2G", 0.0))
    assert snapshots.stale_templates(metas, "template-arm64-2G-bbb") == ["template-arm64-2G-aaa"]


def test_a_clone_cannot_change_the_snapshot(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _publish(store, "s", b"original")
    first, second = store.device_dir("d1"), store.device_dir("d2")
    snapshots.restore_card(store, "s", first)
    with open(first / CARD_FILE, "r+b") as f:
        f.write(b"changed!")
    snapshots.restore_card(store, "s", second)
    assert (second / CARD_FILE).read_bytes()[:8] == b"original"
    assert (store.snapshots / "s" / CARD_FILE).read_bytes()[:8] == b"original"
    # Sparse copies keep the hole: the 8 MiB card takes a few blocks.
    assert (second / CARD_FILE).stat().st_blocks * 512 < 1 << 20
    assert oct((second / CARD_FILE).stat().st_mode & 0o777) == "0o600"
    assert oct(store.devices.stat().st_mode & 0o777) == "0o700"


def test_a_missing_snapshot_names_the_ones_there_are(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _publish(store, "there")
    with pytest.raises(DeviceError, match=r"no snapshot named 'gone'.*there are: there"):
        snapshots.restore_card(store, "gone", store.device_dir("d"))


def test_half_made_snapshots_are_invisible_and_swept_when_their_maker_died(tmp_path: Path) -> None:
    store = _store(tmp_path)
    tmp = store.temp_dir("half")
    _card(tmp / CARD_FILE)   # interrupted before meta.json and the rename
    assert snapshots.read_meta(store, "half") is None and snapshots.list_snapshots(store) == []
    assert store.sweep() == []   # its maker (this process) lives
    (tmp / OWNER_FILE).write_text(f"{socket.gethostname()}:999999999")
    dead_card = store.device_dir("dead-device")
    (dead_card / OWNER_FILE).write_text(f"{socket.gethostname()}:999999999")
    live_card = store.device_dir("live-device")
    _publish(store, "kept")
    reset = store.temp_dir("reset-x")
    store.publish(reset, "reset-x", owned=True)
    (store.snapshots / "reset-x" / OWNER_FILE).write_text(f"{socket.gethostname()}:999999999")
    removed = store.sweep()
    assert not tmp.exists() and not dead_card.exists() and live_card.exists()
    assert not (store.snapshots / "reset-x").exists() and (store.snapshots / "kept").exists()
    assert len(removed) == 3


def test_publishing_again_replaces_the_snapshot_whole(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _publish(store, "s", b"first")
    _publish(store, "s", b"second")
    assert (store.snapshots / "s" / CARD_FILE).read_bytes()[:6] == b"second"
    assert [m.name for m, _ in snapshots.list_snapshots(store)] == ["s"]
    assert not any(p.name.startswith(".tmp-") for p in store.snapshots.iterdir())
    assert store.remove_snapshot("s") and not store.remove_snapshot("s")


def _hold_lock(path: str, ready: multiprocessing.synchronize.Event, release: multiprocessing.synchronize.Event) -> None:
    with file_lock(Path(path)):
        ready.set()
        release.wait(30)


def test_the_snapshot_lock_holds_across_processes(tmp_path: Path) -> None:
    store = _store(tmp_path)
    _publish(store, "s")
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(store.root / "locks" / "s.lock"), ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        import fcntl

        fd = os.open(store.root / "locks" / "s.lock", os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):   # a prune or replace waits for the other worker
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        release.set()
        holder.join(30)


# ---- build cache ------------------------------------------------------------------------------

@pytest.mark.parametrize(("ref", "expected"), [
    ("minimal-server", ("minimal-server", "latest")), ("app:1.2", ("app", "1.2")),
    ("reg:5000/app", ("reg:5000/app", "latest")), ("reg:5000/app:v1", ("reg:5000/app", "v1")),
])
def test_split_ref(ref: str, expected: tuple[str, str]) -> None:
    assert buildcache.split_ref(ref) == expected


def test_entry_refuses_a_hash_that_is_not_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="bad build hash"):
        buildcache.entry("arm64", "../../etc")


def test_only_layers_whose_whole_chain_is_a_base_are_dropped() -> None:
    bases = buildcache.base_chains([["b1", "b2"]])
    manifest = [{"Config": "c1.json", "Layers": ["l1/layer.tar", "l2/layer.tar", "l3/layer.tar"]},
                {"Config": "c2.json", "Layers": ["l1/layer.tar", "l4/layer.tar"]}]
    diff_ids = {"c1.json": ["b1", "b2", "x"], "c2.json": ["b1", "y"]}
    assert buildcache.droppable_layers(manifest, diff_ids, bases) == {"l1/layer.tar", "l2/layer.tar"}
    # The same diff id on top of something else is not the base's layer.
    assert buildcache.droppable_layers([{"Config": "c", "Layers": ["z/layer.tar"]}], {"c": ["b2"]}, bases) == set()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def test_strip_base_layers_keeps_everything_else(tmp_path: Path) -> None:
    full, out = tmp_path / "full.tar", tmp_path / "out.tar"
    with tarfile.open(full, "w") as tar:
        _add(tar, "base/layer.tar", b"B" * 1000)
        _add(tar, "top/layer.tar", b"T")
        _add(tar, "c.json", json.dumps({"rootfs": {"diff_ids": ["b1", "t1"]}}).encode())
        _add(tar, "manifest.json", json.dumps([{"Config": "c.json", "Layers": ["base/layer.tar", "top/layer.tar"]}])
             .encode())
    buildcache.strip_base_layers(full, out, buildcache.base_chains([["b1"]]))
    with tarfile.open(out) as tar:
        assert sorted(tar.getnames()) == ["c.json", "manifest.json", "top/layer.tar"]
        top = tar.extractfile("top/layer.tar")
        assert top is not None and top.read() == b"T"


def test_card_store_setting() -> None:
    from harness.settings import HarnessSettings

    assert HarnessSettings.from_environ({}).card_store == "auto"
    assert HarnessSettings.from_environ({"ARMSTACK_CARD_STORE": "off"}).card_store == "off"
    with pytest.raises(ValueError, match="ARMSTACK_CARD_STORE='bogus': expected one of auto, copy, off"):
        HarnessSettings.from_environ({"ARMSTACK_CARD_STORE": "bogus"})


def test_latest_entry_of_an_image_whatever_its_hash(tmp_path: Path) -> None:
    from harness.settings import HarnessSettings

    settings = HarnessSettings(cache=tmp_path)
    assert buildcache.latest("arm64", "minimal-server", settings) is None
    for n, (build_hash, ref) in enumerate([("aaa", "minimal-server"), ("bbb", "minimal-server"), ("ccc", "other")]):
        info = buildcache.entry("arm64", build_hash, settings).with_suffix(".json")
        info.parent.mkdir(parents=True, exist_ok=True)
        info.write_text(json.dumps({"image": "sha256:x", "ref": ref}))
        os.utime(info, (1000 + n, 1000 + n))
    assert buildcache.latest("arm64", "minimal-server", settings) == buildcache.entry("arm64", "bbb", settings)


def test_forget_removes_every_entry_of_the_images_earlier_builds_too(tmp_path: Path) -> None:
    from harness.settings import HarnessSettings

    settings = HarnessSettings(cache=tmp_path)
    assert buildcache.forget("arm64", ["updates-api"], settings) == []
    for n, (build_hash, ref) in enumerate([("aaa", "updates-api"), ("bbb", "updates-api"), ("ccc", "updates-worker"),
                                           ("ddd", "other")]):
        tar = buildcache.entry("arm64", build_hash, settings)
        tar.parent.mkdir(parents=True, exist_ok=True)
        tar.write_bytes(b"t")
        tar.with_suffix(".json").write_text(json.dumps({"image": "sha256:x", "ref": ref}))
        os.utime(tar.with_suffix(".json"), (1000 + n, 1000 + n))
    assert buildcache.entries("arm64", "updates-api", settings) == [buildcache.entry("arm64", h, settings)
                                                                    for h in ("aaa", "bbb")]
    removed = buildcache.forget("arm64", ["updates-api", "updates-worker"], settings)
    assert sorted(p.stem for p in removed) == ["aaa", "bbb", "ccc"]
    left = sorted(p.name for p in buildcache.entry("arm64", "x", settings).parent.iterdir() if p.suffix != ".lock")
    assert left == ["ddd.json", "ddd.tar"]
    assert buildcache.latest("arm64", "updates-api", settings) is None



def test_built_images_of_a_stack() -> None:
    from runtime.compose.source import StackSource

    stack = Path(__file__).resolve().parents[2] / "stacks" / "updates"
    assert buildcache.built_images(StackSource.of(stack)) == ["updates-api", "updates-worker"]
