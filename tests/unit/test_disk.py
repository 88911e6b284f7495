"""Disk policy on plain data: watermarks, eviction order and ownership, fits, probe parsing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.disk import (
    MIB,
    DiskConfigError,
    DiskPolicy,
    DiskUsage,
    EvictImage,
    ImageInfo,
    PruneBuildCache,
    Threshold,
    estimate_build,
    estimate_pull,
    evictable,
    fits,
    freed,
    parse_bytes,
    plan_eviction,
    releases_to_keep,
    stale_releases,
)
from runtime.diskio import parse_df, parse_probe, parse_statfs

GB = 1 << 30


def usage(percent: float, usable: int = GB) -> DiskUsage:
    used = int(usable * percent / 100)
    return DiskUsage(used=used, total=usable, free=usable - used)


def img(i: int, size: int = 50 * MIB, *, owned: bool = True, last: float = 0.0, service: str = "",
        created: float | None = None) -> ImageInfo:
    return ImageInfo(id=f"sha256:{i:04d}", size=size, owned=owned, last_used=last,
                     created_at=float(i) if created is None else created, service=service)


# -- parsing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "value", "percent"), [
    ("85%", 85, True), ("85", 85, True), (85, 85, True), ("12.5%", 12.5, True), ("100", 100, True),
    ("900M", 900 * MIB, False), ("2G", 2 * GB, False), ("1500000000", 1500000000, False),
    ("512MiB", 512 * MIB, False), ("1gb", GB, False),
])
def test_threshold_parse(text: str | int, value: float, percent: bool) -> None:
    t = Threshold.parse(text)
    assert (t.value, t.percent) == (value, percent)


@pytest.mark.parametrize("text", ["0%", "101%", "-5%", "lots", "85 %%", ""])
def test_threshold_parse_errors(text: str) -> None:
    with pytest.raises(DiskConfigError):
        Threshold.parse(text)


def test_threshold_bytes_capped_by_usable() -> None:
    assert Threshold.parse("85%").used_bytes(1000) == 850
    assert Threshold.parse("2G").used_bytes(GB) == GB


def test_parse_bytes_error_says_what_is_expected() -> None:
    with pytest.raises(DiskConfigError, match="900M"):
        parse_bytes("big")


def test_policy_from_settings_and_env() -> None:
    p = DiskPolicy.from_settings("90%", "700M", "2", "1G")
    assert (str(p.high), p.low.percent, p.keep_releases, p.build_cache_budget) == ("90%", False, 2, GB)
    d = DiskPolicy.from_env({})
    assert (str(d.high), str(d.low), d.keep_releases) == ("85%", "80%", 1)
    e = DiskPolicy.from_env({"ARMSTACK_DISK_HIGH": "70", "ARMSTACK_DISK_LOW": "60%", "ARMSTACK_KEEP_RELEASES": "0"})
    assert (e.high.value, e.low.value, e.keep_releases) == (70, 60, 0)


@pytest.mark.parametrize("args", [("80%", "85%", None, None), (None, None, "-1", None), (None, None, "x", None)])
def test_policy_rejects_nonsense(args: tuple[str | None, ...]) -> None:
    with pytest.raises(DiskConfigError):
        DiskPolicy.from_settings(*args)


def test_low_never_above_high_in_bytes() -> None:
    p = DiskPolicy(high=Threshold.parse("50%"), low=Threshold.parse("900M"))
    u = usage(10)
    assert p.low_bytes(u) == p.high_bytes(u)


def test_usage_percent_like_df() -> None:
    u = DiskUsage(used=750, total=1100, free=250)   # 100 reserved for root
    assert u.percent == 75.0 and u.usable == 1000
    assert u.after(100).used == 850 and u.after(-10_000).used == 0 and u.after(10_000).free == 0


def test_parse_statfs() -> None:
    u = parse_statfs("4096 262144 100000 90000\n")
    assert u == DiskUsage(used=(262144 - 100000) * 4096, total=262144 * 4096, free=90000 * 4096)


def test_parse_df_bytes_and_wrapped_and_busybox() -> None:
    gnu = ("Filesystem     1B-blocks      Used Available Use% Mounted on\n"
           "/dev/loop3     1020702720 512000000 456000000  53% /armstack-engine-root\n")
    assert parse_df(gnu) == DiskUsage(used=512000000, total=1020702720, free=456000000)
    wrapped = ("Filesystem 1B-blocks Used Available Use% Mounted on\n/dev/mapper/very-long-name\n"
               "    1000 600 300  67% /x\n")
    assert parse_df(wrapped) == DiskUsage(used=600, total=1000, free=300)
    busybox = "Filesystem 1K-blocks Used Available Use% Mounted on\n/dev/loop0 1000 600 300 67% /x\n"
    assert parse_df(busybox) == DiskUsage(used=600 * 1024, total=1000 * 1024, free=300 * 1024)


def test_parse_probe_falls_back_to_df_and_rejects_garbage() -> None:
    assert parse_probe("Filesystem 1B-blocks Used Available Use% Mounted on\nx 10 6 3 67% /x\n").used == 6
    with pytest.raises(ValueError):
        parse_probe("stat: cannot read file system information: No such file")


# -- eviction --------------------------------------------------------------------------------


def test_nothing_to_do_below_high() -> None:
    assert plan_eviction(usage(84), [img(1)], (), (), DiskPolicy()) == []


def test_lru_order_and_stops_at_low() -> None:
    images = [img(1, last=300), img(2, last=100), img(3, last=200), img(4, last=50, owned=False)]
    plan = plan_eviction(usage(88), images, (), (), DiskPolicy())
    # 8 % of 1 GiB ≈ 82 MiB to free: the two least recently used of ours (100, then 200).
    assert [e.image_id for e in plan if isinstance(e, EvictImage)] == ["sha256:0002", "sha256:0003"]


def test_never_in_use_protected_or_foreign() -> None:
    images = [img(1), img(2), img(3, owned=False), img(4)]
    plan = plan_eviction(usage(99), images, in_use={"sha256:0001"}, protected={"sha256:0002"}, policy=DiskPolicy())
    assert {e.image_id for e in plan if isinstance(e, EvictImage)} == {"sha256:0004"}


def test_build_cache_after_images() -> None:
    plan = plan_eviction(usage(95), [img(1, size=10 * MIB)], (), (), DiskPolicy(), build_cache=300 * MIB)
    assert isinstance(plan[0], EvictImage) and isinstance(plan[-1], PruneBuildCache)
    assert freed(plan) == 310 * MIB


def test_forced_eviction_makes_room_for_an_update() -> None:
    plan = plan_eviction(usage(78), [img(1, size=100 * MIB)], (), (), DiskPolicy(), needed=60 * MIB, force=True)
    assert [e.image_id for e in plan if isinstance(e, EvictImage)] == ["sha256:0001"]


def test_fits() -> None:
    p = DiskPolicy()
    assert fits(usage(50), 100 * MIB, 0, p)
    assert not fits(usage(97), 100 * MIB, 0, p)
    assert fits(usage(97), 100 * MIB, 300 * MIB, p)
    # physically impossible even if the watermark were generous
    assert not fits(usage(50), 2 * GB, 0, DiskPolicy(high=Threshold.parse("100%")))


def test_estimates() -> None:
    assert estimate_build(10 * MIB, base_size=200 * MIB, previous_size=260 * MIB) == 20 * MIB + 60 * MIB
    assert estimate_build(0, base_size=200 * MIB, base_present=False) > 200 * MIB
    assert estimate_pull(100) == 200 and estimate_pull(None) > 0


def test_releases_to_keep_and_stale() -> None:
    images = [img(1, service="web", created=1), img(2, service="web", created=2), img(3, service="web", created=3),
              img(4, service="db", created=1), img(5, service="web", created=4, owned=False)]
    current = {"web": "sha256:0003", "db": "sha256:0004"}
    assert releases_to_keep(images, current, 1) == {"sha256:0002"}
    assert releases_to_keep(images, current, 2) == {"sha256:0002", "sha256:0001"}
    assert releases_to_keep(images, current, 0) == set()
    assert [i.id for i in stale_releases(images, current, 1, in_use=())] == ["sha256:0001"]
    assert stale_releases(images, current, 1, in_use={"sha256:0001"}) == []


# -- properties ------------------------------------------------------------------------------

images_st = st.lists(
    st.builds(ImageInfo, id=st.text("0123456789abcdef", min_size=4, max_size=8).map(lambda s: "sha256:" + s),
              size=st.integers(0, 300 * MIB), owned=st.booleans(), last_used=st.floats(0, 1e6),
              created_at=st.floats(0, 1e6)),
    max_size=25, unique_by=lambda i: i.id)


@settings(max_examples=300, deadline=None)
@given(images=images_st, percent=st.floats(0, 100), data=st.data(), cache=st.integers(0, 200 * MIB))
def test_eviction_properties(images: list[ImageInfo], percent: float, data: st.DataObject, cache: int) -> None:
    ids = [i.id for i in images]
    in_use = set(data.draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
    protected = set(data.draw(st.lists(st.sampled_from(ids), max_size=5))) if ids else set()
    u, policy = usage(percent), DiskPolicy()
    plan = plan_eviction(u, images, in_use, protected, policy, build_cache=cache)
    by_id = {i.id: i for i in images}
    evicted = [e for e in plan if isinstance(e, EvictImage)]
    # never protected, in use or foreign; each image once
    assert all(by_id[e.image_id].owned and e.image_id not in in_use | protected for e in evicted)
    assert len({e.image_id for e in evicted}) == len(evicted)
    # nothing below high
    if u.used <= policy.high_bytes(u):
        assert plan == []
        return
    # LRU: the evicted ones are a prefix of the candidates in LRU order
    candidates = evictable(images, in_use, protected)
    assert [e.image_id for e in evicted] == [c.id for c in candidates[:len(evicted)]]
    # ends ≤ low when possible; stops as soon as it gets there (the last one was needed)
    projected = u.used - freed(plan)
    possible = u.used - sum(c.size for c in candidates) - cache <= policy.low_bytes(u)
    if possible:
        assert projected <= policy.low_bytes(u)
    if evicted and not any(isinstance(e, PruneBuildCache) for e in plan):
        assert projected + evicted[-1].size > policy.low_bytes(u)


@settings(max_examples=200, deadline=None)
@given(percent=st.floats(0, 100), needed=st.integers(0, 2 * GB), room=st.integers(0, 2 * GB))
def test_fits_is_monotonic(percent: float, needed: int, room: int) -> None:
    u = usage(percent)
    if fits(u, needed, room):
        assert fits(u, max(0, needed - MIB), room) and fits(u, needed, room + MIB)


class _ProbeClient:
    """Records the probe container's run arguments and answers like `stat -f` would."""

    def __init__(self) -> None:
        self.runs: list[dict[str, object]] = []
        self.volumes_made: list[tuple[str, dict[str, str]]] = []
        outer = self

        class API:
            def info(self) -> dict[str, str]:
                return {"DockerRootDir": "/nonexistent/engine-root"}

            def inspect_volume(self, name: str) -> dict[str, object]:
                import docker.errors

                raise docker.errors.NotFound(name)

            def create_volume(self, name: str, driver: str = "local", labels: dict[str, str] | None = None,
                              **_: object) -> dict[str, object]:
                outer.volumes_made.append((name, dict(labels or {})))
                return {"Name": name}

        class Containers:
            def run(self, image: str, command: object, **kw: object) -> bytes:
                outer.runs.append({"image": image, "command": command, **kw})
                return b"4096 1000 400 300\n"

        self.api = API()
        self.containers = Containers()


def test_the_probe_never_mounts_the_engine_data_root() -> None:
    from runtime.diskio import DiskIO

    client = _ProbeClient()
    io = DiskIO(client, "p", extra_labels={"io.armstack.test": "1"})  # type: ignore[arg-type]
    usage = io.usage(["p-web"])
    assert usage.used == 600 * 4096 and io.method == "probe container"
    [run] = client.runs
    mounts = run["volumes"]
    assert isinstance(mounts, dict) and "/nonexistent/engine-root" not in mounts
    [(source, mount)] = mounts.items()
    assert mount["mode"] == "ro" and source == client.volumes_made[0][0]
    labels = client.volumes_made[0][1]
    assert labels["io.armstack.stack"] == "p" and labels["io.armstack.test"] == "1"
    # A container that only reads statfs: no network, no capabilities, no writes.
    assert run["network_mode"] == "none" and run["cap_drop"] == ["ALL"] and run["read_only"] is True
    assert run["security_opt"] == ["no-new-privileges"]


def test_mount_read_only_reads_the_super_options_of_the_mount_holding_the_path() -> None:
    from runtime.diskio import mount_read_only

    info = ("111 74 254:0 /run/x /media/sdcard ro,relatime master:9 - ext4 /dev/vda rw,discard\n"
            "112 111 7:2 / /media/sdcard/card rw,relatime master:11 - ext4 /dev/loop2 rw,errors=remount-ro\n")
    # A read-only bind above a writable card is no read-only card.
    assert not mount_read_only(info, "/media/sdcard/card")
    assert not mount_read_only(info, "/media/sdcard/card/overlay2")
    broken = info.replace("errors=remount-ro", "errors=remount-ro,emergency_ro")
    assert mount_read_only(broken, "/media/sdcard/card/overlay2")
    assert not mount_read_only(broken, "/media/sdcard")
    assert mount_read_only(info.replace("/dev/loop2 rw,", "/dev/loop2 ro,"), "/media/sdcard/card")
    assert not mount_read_only("garbage\n", "/x")
