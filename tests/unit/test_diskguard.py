"""The disk guard with a fake engine side: refusal, backoff, re-admission, ENOSPC, boot cleanup, CLI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from runtime.actions import ActionResult, Build, Create
from runtime.cli import format_disk, parse_args, status_lines
from runtime.compose.model import ServiceSpec, StackSpec
from runtime.disk import MIB, DiskPolicy, DiskUsage, ImageInfo
from runtime.diskguard import RETRY_FIRST, DiskGuard
from runtime.errors import DiskFullError
from runtime.observed import Desired, ObservedImage, ObservedState
from runtime.stackdisk import StackDisk

GB = 1 << 30
P = "p"


class FakeIO:
    def __init__(self, images: list[ImageInfo], cache: int = 0) -> None:
        self.imgs = images
        self.cache = cache
        self.removed: list[str] = []
        self.leftovers: list[str] | None = None
        self.containers: list[dict[str, Any]] = []

    def usage(self, probe_images: Iterable[str] = ()) -> DiskUsage:
        raise AssertionError("the tests inject usage")

    def forget(self) -> None:
        pass

    def images(self, owned: Mapping[str, str], last_used: Mapping[str, float], *, unique_sizes: bool = False
               ) -> tuple[list[ImageInfo], int]:
        return [i for i in self.imgs if i.id not in self.removed], self.cache

    def remove_image(self, image_id: str, tags: Iterable[str] = ()) -> str | None:
        self.removed.append(image_id)
        return None

    def prune_build_cache(self, keep: int = 0) -> tuple[int, str | None]:
        return self.cache - keep, None

    def dangling_owned(self, owned: Iterable[str]) -> list[str]:
        return []

    def remove_build_leftovers(self, created: Iterable[str]) -> list[str]:
        self.leftovers = list(created)
        return self.leftovers

    def owned_containers(self) -> list[dict[str, Any]]:
        return self.containers

    def remove_container(self, cid: str) -> str | None:
        self.containers = [c for c in self.containers if c["Id"] != cid]
        return None

    def image_id(self, ref: str) -> str | None:
        return "sha256:pulled"


class Clock:
    t = 1000.0

    def __call__(self) -> float:
        return self.t


def setup(percent: float, images: list[ImageInfo], tmp: Path) -> tuple[DiskGuard, FakeIO, Clock, list[str],
                                                                      dict[str, float]]:
    fake = FakeIO(images)
    clock = Clock()
    logs: list[str] = []
    state = {"percent": percent}

    def usage() -> DiskUsage:
        used = int(GB * state["percent"] / 100)
        return DiskUsage(used, GB, GB - used)

    guard = DiskGuard(fake, DiskPolicy(), tmp / "disk.json", lambda m, level="info": logs.append(m),  # type: ignore[arg-type]
                      usage=usage, clock=clock)
    return guard, fake, clock, logs, state


def world(tmp: Path) -> tuple[Desired, ObservedState]:
    ctx = tmp / "web"
    ctx.mkdir(exist_ok=True)
    (ctx / "Dockerfile").write_text("FROM base:1\nRUN true\n")
    from runtime.compose.model import BuildSpec

    stack = StackSpec(P, (ServiceSpec("web", image="p-web", build=BuildSpec(context=str(ctx))),))
    observed = ObservedState(images=(
        ObservedImage("sha256:cur", tags=("p-web:latest",), size=300 * MIB),
        ObservedImage("sha256:base", tags=("base:1",), size=200 * MIB),
    ))
    return Desired(stack), observed


def test_refuses_when_it_does_not_fit_then_readmits_with_backoff(tmp_path: Path) -> None:
    guard, fake, clock, logs, state = setup(97, [ImageInfo("sha256:cur", 300 * MIB, owned=True, service="web")],
                                            tmp_path)
    desired, observed = world(tmp_path)
    build = Build("web", "p-web", "h2")
    actions, refused = guard.admit([build, Create("x", "i", "c")], observed, desired)
    assert build not in actions and len(actions) == 1
    assert len(refused) == 1 and "needs about" in refused[0] and "free" in refused[0] and "retried" in refused[0]
    assert "web" in guard.status_json()["refused"]
    # held during backoff, without a second message
    assert guard.admit([build], observed, desired) == ([], [])
    assert guard.refused["web"].next_try == clock.t + RETRY_FIRST and guard.next_due() <= clock.t + RETRY_FIRST
    # still full at the retry: refused again, backoff doubles, no new message
    clock.t += RETRY_FIRST
    assert guard.admit([build], observed, desired) == ([], [])
    assert guard.refused["web"].delay == 2 * RETRY_FIRST
    # space freed: admitted
    state["percent"] = 40
    clock.t += 2 * RETRY_FIRST
    assert guard.admit([build], observed, desired) == ([build], [])
    assert guard.refused == {} and any("room again" in m for m in logs)
    assert fake.removed == []   # the current release is never evicted to make room


def test_watermark_evicts_lru_but_keeps_current_and_previous(tmp_path: Path) -> None:
    images = [ImageInfo("sha256:cur", 300 * MIB, owned=True, service="web", created_at=5),
              ImageInfo("sha256:prev", 100 * MIB, owned=True, service="web", created_at=4),
              ImageInfo("sha256:old1", 60 * MIB, owned=True, service="web", created_at=2, last_used=20),
              ImageInfo("sha256:old2", 60 * MIB, owned=True, service="web", created_at=3, last_used=10),
              ImageInfo("sha256:foreign", 500 * MIB, owned=False)]
    guard, fake, clock, logs, state = setup(90, images, tmp_path)
    desired, observed = world(tmp_path)
    guard.check(observed, desired)
    assert fake.removed == ["sha256:old2", "sha256:old1"]
    status = guard.status_json()
    assert status["last_cleanup"]["removed"] and status["high"] == "85%" and status["percent"] == 90.0
    # not due again until the interval passed
    fake.removed.clear()
    guard.check(observed, desired)
    assert fake.removed == []
    assert (tmp_path / "disk.json").exists()


def test_enospc_build_cleans_leftovers_and_retries(tmp_path: Path) -> None:
    guard, fake, clock, logs, state = setup(50, [], tmp_path)
    desired, observed = world(tmp_path)
    build = Build("web", "p-web", "h2")
    assert guard.admit([build], observed, desired)[0] == [build]
    res = ActionResult(build, False, DiskFullError("Could not build ...: the disk is full (no space left on device)."),
                       images=("3e1f2a7b9c0d", "77aa11bb22cc"))
    assert guard.note_results([res], observed, desired) == {"web"}
    # Only the layers the build itself made are cleaned up, never every recent untagged image.
    assert fake.leftovers == ["3e1f2a7b9c0d", "77aa11bb22cc"]
    assert "ran out of disk space" in guard.refused["web"].message
    assert "2 partial layer(s) removed" in guard.refused["web"].message
    assert guard.admit([build], observed, desired)[0] == []   # backoff


def test_boot_cleanup_removes_stale_releases_and_stray_containers(tmp_path: Path) -> None:
    images = [ImageInfo("sha256:cur", 300 * MIB, owned=True, service="web", created_at=5),
              ImageInfo("sha256:prev", 100 * MIB, owned=True, service="web", created_at=4),
              ImageInfo("sha256:old", 60 * MIB, owned=True, service="web", created_at=2),
              ImageInfo("sha256:foreign", 500 * MIB, owned=False, service="web")]
    guard, fake, clock, logs, state = setup(30, images, tmp_path)
    fake.containers = [{"Id": "c1", "State": "exited", "Labels": {"io.armstack.service": "gone"}},
                       {"Id": "c2", "State": "running", "Labels": {"io.armstack.service": "gone"}},
                       {"Id": "c3", "State": "exited", "Labels": {"io.armstack.service": "web"}}]
    desired, observed = world(tmp_path)
    guard.boot_cleanup(observed, desired)
    assert fake.removed == ["sha256:old"]
    assert [c["Id"] for c in fake.containers] == ["c2", "c3"]


def test_pulls_are_recorded_as_owned(tmp_path: Path) -> None:
    from runtime.actions import Pull

    guard, fake, *_ = setup(30, [], tmp_path)
    desired, observed = world(tmp_path)
    guard.note_results([ActionResult(Pull("web", "x:1"), True)], observed, desired)
    again = DiskGuard(fake, DiskPolicy(), tmp_path / "disk.json", lambda m, level="info": None)  # type: ignore[arg-type]
    assert again.pulled == {"sha256:pulled": "web"}


def test_cli_flags_and_disk_line() -> None:
    args = parse_args(["up", "--disk-high", "90%", "--disk-low", "700M", "--keep-releases", "2"])
    assert (args.disk_high, args.disk_low, args.keep_releases) == ("90%", "700M", "2")
    disk = {"used": 800 * MIB, "free": 200 * MIB, "percent": 80.0, "high": "85%", "low": "80%",
            "last_cleanup": {"at": 0, "freed_bytes": 120 * MIB, "removed": ["a", "b"]}}
    line = format_disk(disk)
    assert line is not None and line.startswith("disk 80.0% used") and "freed 120 MB (2 removed)" in line
    assert format_disk({}) is None
    lines = status_lines({"project": "p", "services": {}, "disk": disk})
    assert any(ln.startswith("disk ") for ln in lines)


def test_builds_are_recorded_as_owned(tmp_path: Path) -> None:
    guard, fake, *_ = setup(30, [], tmp_path)
    desired, observed = world(tmp_path)
    from runtime.actions import Pull

    guard.note_results([ActionResult(Pull("cache", "redis:7"), True)], observed, desired)
    fake.image_id = lambda ref: "sha256:built"  # type: ignore[method-assign]
    # A second record after a first save must reach the file too.
    guard.note_results([ActionResult(Build("web", "p-web", "h"), True, images=("sha256:built",))], observed, desired)
    again = DiskGuard(fake, DiskPolicy(), tmp_path / "disk.json", lambda m, level="info": None)  # type: ignore[arg-type]
    assert again.built == {"sha256:built": "web"} and again.pulled == {"sha256:pulled": "cache"}
    assert again.owned == {"sha256:built": "web", "sha256:pulled": "cache"}


class FakeImagesAPI:
    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.removed: list[str] = []

    def images(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        rows = [r for r in self.rows if r["Id"] not in self.removed]
        if filters and filters.get("dangling"):
            rows = [r for r in rows if not r.get("RepoTags")]
        return rows

    def containers(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [{"ImageID": "sha256:used"}]

    def remove_image(self, image: str, force: bool = False, noprune: bool = False) -> None:
        self.removed.append(image)


def diskio(rows: list[dict[str, Any]]) -> tuple[Any, FakeImagesAPI]:
    from runtime.diskio import DiskIO

    api = FakeImagesAPI(rows)

    class Client:
        pass

    client = Client()
    client.api = api  # type: ignore[attr-defined]
    return DiskIO(client, P), api  # type: ignore[arg-type]


def test_image_ownership_is_the_recorded_ids_not_labels() -> None:
    ours = {"io.armstack.image.stack": P, "io.armstack.image.service": "web"}
    rows = [{"Id": "sha256:built", "Labels": ours, "RepoTags": ["p-web:latest"]},
            {"Id": "sha256:from-ours", "Labels": ours, "RepoTags": ["operator:1"]},          # FROM p-web
            {"Id": "sha256:committed", "Labels": {"io.armstack.stack": P, "io.armstack.service": "web"}},
            {"Id": "sha256:pulled", "Labels": {}, "RepoTags": ["redis:7"]}]
    io, _ = diskio(rows)
    images, _ = io.images({"sha256:built": "web", "sha256:pulled": "cache"}, {})
    owned = {i.id: i.service for i in images if i.owned}
    assert owned == {"sha256:built": "web", "sha256:pulled": "cache"}
    assert io.dangling_owned({"sha256:built"}) == [] and io.dangling_owned({"sha256:committed"}) == ["sha256:committed"]


def test_build_leftovers_are_only_the_layers_the_build_made() -> None:
    rows = [{"Id": "sha256:aaaa11112222ffff", "ParentId": "sha256:bbbb11112222ffff"},   # the build's, leaf
            {"Id": "sha256:bbbb11112222ffff", "ParentId": ""},                        # the build's, parent
            {"Id": "sha256:cccc11112222ffff", "ParentId": ""},                        # someone else's, untagged
            {"Id": "sha256:dddd11112222ffff", "RepoTags": ["x:1"]}]                   # the build's but tagged
    io, api = diskio(rows)
    removed = io.remove_build_leftovers(["aaaa11112222", "bbbb11112222", "dddd11112222"])
    assert removed == ["sha256:aaaa11112222ffff", "sha256:bbbb11112222ffff"] == api.removed


def test_a_build_reports_the_layers_it_made_but_not_the_base_or_cache(tmp_path: Path) -> None:
    from runtime.executor import Executor

    desired, _ = world(tmp_path)
    stream = [{"stream": "Step 1/3 : FROM base:1\n"}, {"stream": " ---> ca8ae021d0f1\n"},
              {"stream": "Step 2/3 : RUN true\n"}, {"stream": " ---> Using cache\n"},
              {"stream": " ---> 1264511cc4c0\n"},
              {"stream": "Step 3/3 : RUN echo new\n"}, {"stream": " ---> Running in ec077261e852\n"},
              {"stream": "Removing intermediate container ec077261e852\n"}, {"stream": " ---> 3e1f2a7b9c0d\n"},
              {"error": "no space left on device"}]

    class API:
        def build(self, **kw: Any) -> Any:
            return iter(stream)

    class Client:
        api = API()

    ex = Executor(Client(), desired)  # type: ignore[arg-type]
    [result] = ex.execute([Build("web", "p-web", "h")])
    assert not result.ok and result.images == ("3e1f2a7b9c0d",)


def test_the_stacks_disk_is_idle_until_opened_then_says_when_a_refused_update_fits(tmp_path: Path) -> None:
    desired, observed = world(tmp_path)
    build = Build("web", "p-web", "h2")
    idle = StackDisk()
    assert idle.admit([build], observed, desired) == ([build], [], False)
    assert (idle.next_due(), idle.status_json(), idle.note_results([], observed, desired)) == (None, {}, set())
    guard, _, clock, _, state = setup(97, [ImageInfo("sha256:cur", 300 * MIB, owned=True, service="web")], tmp_path)
    disk = StackDisk()
    disk.guard = guard
    allowed, refusals, readmitted = disk.admit([build], observed, desired)
    assert allowed == [] and len(refusals) == 1 and not readmitted
    assert disk.next_due() == guard.next_due() and "web" in disk.status_json()["refused"]
    state["percent"] = 40
    clock.t += RETRY_FIRST
    assert disk.admit([build], observed, desired) == ([build], [], True)


class LruIO(FakeIO):
    """A fake engine side that reports the guard's last-use stamps, as DiskIO does."""

    def images(self, owned: Mapping[str, str], last_used: Mapping[str, float], *, unique_sizes: bool = False
               ) -> tuple[list[ImageInfo], int]:
        imgs, cache = super().images(owned, last_used, unique_sizes=unique_sizes)
        return [ImageInfo(i.id, i.size, owned=i.owned, service=i.service, created_at=i.created_at,
                          last_used=last_used.get(i.id, 0.0)) for i in imgs], cache


def _running(image_id: str) -> ObservedState:
    from runtime.observed import ObservedContainer

    return ObservedState(containers=(ObservedContainer("c-" + image_id, "n", "job", "h", image_id, "running"),))


def test_a_backward_clock_jump_keeps_the_lru_order(tmp_path: Path) -> None:
    """Images a, b, c of a job service ran one after the other; between b and c the wall clock
    jumped back a day. A plain wall-clock stamp would make c (used last) look a day older than
    a and b, and a cleanup would evict it first; the guard's stamps keep the order of use."""
    images = [ImageInfo(f"sha256:{n}", 100 * MIB, owned=True, created_at=1.0) for n in "abc"]
    fake = LruIO(images)
    wall = Clock()
    wall.t = 1_800_000_000.0
    guard = DiskGuard(fake, DiskPolicy(keep_releases=0), tmp_path / "disk.json", lambda m, level="info": None,  # type: ignore[arg-type]
                      usage=lambda: DiskUsage(int(0.9 * GB), GB, GB // 10), clock=Clock(), wall=wall)
    desired = Desired(StackSpec(P, (ServiceSpec("web", image="p-web"),)))
    for name, jump in (("a", 0.0), ("b", 60.0), ("c", 60.0 - 86_400)):
        wall.t += jump
        guard.note_observed(_running(f"sha256:{name}"), desired)
    stamps = [guard.last_used[f"sha256:{n}"] for n in "abc"]
    assert stamps == sorted(stamps) and len(set(stamps)) == 3, stamps
    assert wall.t < stamps[0]   # what the wall clock said would have put c first in line

    guard.check(ObservedState(), desired)   # nothing runs now: least recently used first
    assert fake.removed[:2] == ["sha256:a", "sha256:b"]

    # Once the clock is past every stamp, stamps are the wall clock again.
    wall.t = stamps[-1] + 3600
    guard.note_observed(_running("sha256:c"), desired)
    assert guard.last_used["sha256:c"] == wall.t


def test_a_read_only_card_is_reported_once_and_its_repair_too(tmp_path: Path) -> None:
    logs: list[tuple[str, str]] = []
    state = {"ro": False}

    def usage() -> DiskUsage:
        return DiskUsage(GB // 2, GB, GB // 2, read_only=state["ro"])

    guard = DiskGuard(FakeIO([]), DiskPolicy(), tmp_path / "disk.json",  # type: ignore[arg-type]
                      lambda m, level="info": logs.append((level, m)), usage=usage)
    desired, observed = world(tmp_path)
    guard.measure(observed, desired)
    assert logs == [] and guard.status_json()["read_only"] is False
    state["ro"] = True
    guard.measure(observed, desired)
    guard.measure(observed, desired)
    assert [lvl for lvl, _ in logs] == ["error"] and "read-only" in logs[0][1]
    assert guard.status_json()["read_only"] is True
    assert "READ-ONLY" in (format_disk(guard.status_json()) or "")
    state["ro"] = False
    guard.measure(observed, desired)
    assert len(logs) == 2 and "writable again" in logs[1][1]
