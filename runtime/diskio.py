"""The engine side of disk handling: measuring the data root, listing and removing images.

Together with ``runtime/engine/`` (run by the executor) this is the only code that calls the
engine; the policy it serves lives in ``runtime/disk.py`` (pure). How the free space of the engine's storage is
measured, first that works:

1. ``ARMSTACK_ENGINE_ROOT``: a path where this process sees the engine's data root (an
   emulated device mounts its SD card there) — ``statvfs`` of it.
2. The engine's ``DockerRootDir`` (``docker info``), if it exists here and looks like an
   engine root (has ``image/`` or an ``overlay2/`` directory): a real device, or the
   all-in-one image where runtime and engine share a filesystem.
3. A probe through the engine: a tiny ``--rm`` container from an image the stack already
   has, labelled as the stack's, printing ``stat -f -c '%S %b %f %a'`` (or ``df -B1`` where
   ``stat -f`` is missing) of an empty volume of its own (``armstack-disk-probe.<project>``),
   mounted read-only. A local volume lives under ``<DockerRootDir>/volumes``, so its
   filesystem is the data root's, and the container sees nothing else: the data root holds
   every project's volumes and container configurations, which a stack image has no business
   reading. The container has no network, no capabilities and a read-only root. Slow under
   emulation (a container start), so results are cached for ``probe_ttl`` seconds.

``parse_statfs`` and ``parse_df`` turn the probe's output into a :class:`DiskUsage`.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import docker
import docker.errors

from runtime import labels as L
from runtime.disk import DiskUsage, ImageInfo
from runtime.errors import EngineError
from runtime.ownership import owner_of

ENGINE_ROOT_ENV = "ARMSTACK_ENGINE_ROOT"
PROBE_MOUNT = "/armstack-engine-root"
PROBE_VOLUME = "armstack-disk-probe"
PROBE_CMD = (f"stat -f -c '%S %b %f %a' {PROBE_MOUNT} 2>/dev/null || df -B1 {PROBE_MOUNT} 2>/dev/null "
             f"|| df -k {PROBE_MOUNT}")

UsageProvider = Callable[[], DiskUsage]


def parse_statfs(text: str) -> DiskUsage:
    """``stat -f -c '%S %b %f %a'`` output (block size, blocks, free blocks, available blocks)."""
    for line in text.strip().splitlines():
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts):
            bsize, blocks, bfree, bavail = (int(p) for p in parts)
            return DiskUsage(used=(blocks - bfree) * bsize, total=blocks * bsize, free=bavail * bsize)
    raise ValueError(f"not `stat -f -c '%S %b %f %a'` output: {text.strip()[:200]!r}")


def parse_df(text: str) -> DiskUsage:
    """``df -B1 PATH`` (or ``df -k``: 1K-blocks) output: a header, then one filesystem line.

    GNU df may wrap a long device name onto its own line; busybox prints ``1K-blocks``.
    """
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"not df output: {text.strip()[:200]!r}")
    header = lines[0].lower()
    unit = 1024 if "1k-blocks" in header or "1024-blocks" in header else 1
    fields = " ".join(lines[1:]).split()
    nums = [f for f in fields if f.isdigit()]
    if len(nums) < 3:
        raise ValueError(f"not df output: {text.strip()[:200]!r}")
    total, used, avail = (int(n) * unit for n in nums[:3])
    return DiskUsage(used=used, total=total, free=avail)


def parse_probe(text: str) -> DiskUsage:
    try:
        return parse_statfs(text)
    except ValueError:
        return parse_df(text)


def usage_of_path(path: str) -> DiskUsage:
    st = os.statvfs(path)
    return DiskUsage(used=(st.f_blocks - st.f_bfree) * st.f_frsize, total=st.f_blocks * st.f_frsize,
                     free=st.f_bavail * st.f_frsize,
                     read_only=bool(st.f_flag & os.ST_RDONLY) or _mounted_read_only(path))


def _mounted_read_only(path: str) -> bool:
    try:
        with open("/proc/self/mountinfo") as f:
            return mount_read_only(f.read(), os.path.realpath(path))
    except OSError:
        return False


def mount_read_only(mountinfo: str, path: str) -> bool:
    """Whether the filesystem mounted where ``path`` lives went read-only, from ``/proc/self/mountinfo``.

    ext4 after errors (errors=remount-ro) shows ``emergency_ro`` in its super options on newer
    kernels and leaves statvfs saying read-write; older ones set ``ro`` there. The mount's own
    options are not read: a read-only bind of a writable card is no read-only card."""
    best: tuple[int, bool] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" - ", 1)
        head, tail = fields[0].split(), fields[1].split() if len(fields) == 2 else []
        if len(head) < 5 or len(tail) < 3:
            continue
        point = head[4].replace("\040", " ")
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        # The last of equal mount points is the one on top.
        if inside and (best is None or len(point) >= best[0]):
            best = (len(point), not {"ro", "emergency_ro"}.isdisjoint(tail[2].split(",")))
    return best is not None and best[1]


def looks_like_engine_root(path: str) -> bool:
    return any(os.path.isdir(os.path.join(path, d)) for d in ("image", "overlay2", "containers"))


@dataclass
class _Probe:
    image: str
    root: str


class DiskIO:
    """Disk facts and removals for one stack on one engine."""

    def __init__(self, client: docker.DockerClient, project: str, *, extra_labels: Mapping[str, str] | None = None,
                 engine_root: str | None = None, probe_ttl: float = 20.0) -> None:
        self.client = client
        self.api = client.api
        self.project = project
        self.extra_labels = dict(extra_labels or {})
        self.local_root = engine_root   # RuntimeSettings.engine_root: the engine's data root, mounted here
        self.probe_ttl = probe_ttl
        self.method = ""                       # how usage is measured (for status and logs)
        self._root: str | None = None
        self._cached: tuple[float, DiskUsage] | None = None

    # -- usage --------------------------------------------------------------------------------

    def engine_root(self) -> str:
        if self._root is None:
            self._root = str(self.api.info().get("DockerRootDir") or "/var/lib/docker")
        return self._root

    def usage(self, probe_images: Iterable[str] = ()) -> DiskUsage:
        """Used/free bytes of the engine's data root (see the module docstring for how)."""
        local = self.local_root
        if local and os.path.isdir(local):
            self.method = f"statvfs {local}"
            return usage_of_path(local)
        try:
            root = self.engine_root()
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"Could not ask the engine for its data root: {exc}.") from exc
        if os.path.isdir(root) and looks_like_engine_root(root):
            self.method = f"statvfs {root}"
            return usage_of_path(root)
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.probe_ttl:
            return self._cached[1]
        usage = self.probe(probe_images)
        self.method = "probe container"
        self._cached = (now, usage)
        return usage

    def forget(self) -> None:
        """Drop a cached probe result (after a cleanup or a build the numbers changed)."""
        self._cached = None

    @property
    def probe_volume(self) -> str:
        # '.' cannot occur in a compose project name, so this never collides with <project>_<name>.
        return f"{PROBE_VOLUME}.{self.project}"

    def _probe_volume(self) -> str:
        """The probe's own empty volume, created once, labelled as the stack's."""
        name = self.probe_volume
        try:
            found = self.api.inspect_volume(name)
        except docker.errors.NotFound:
            self.api.create_volume(name, driver="local",
                                   labels={**self.extra_labels, L.STACK: self.project, L.SERVICE: PROBE_VOLUME})
            return name
        owner = owner_of(found.get("Labels"))
        if owner not in ("", self.project):
            raise EngineError(f"The volume {name!r} belongs to project {owner!r}; remove it or set "
                              f"{ENGINE_ROOT_ENV} so that the disk probe is not needed.")
        return name

    def probe(self, probe_images: Iterable[str]) -> DiskUsage:
        """Measure through a probe container run from the first of ``probe_images`` that works."""
        errors: list[str] = []
        try:
            volume = self._probe_volume()
        except (docker.errors.DockerException, OSError) as exc:
            raise EngineError(f"Could not create the disk probe's volume: {exc}.") from exc
        for image in probe_images:
            try:
                out = self.client.containers.run(
                    image, ["sh", "-c", PROBE_CMD], remove=True, network_mode="none",
                    labels={**self.extra_labels, L.STACK: self.project, L.SERVICE: PROBE_VOLUME},
                    volumes={volume: {"bind": PROBE_MOUNT, "mode": "ro"}}, stdout=True, stderr=False,
                    entrypoint=[], log_config={"type": "json-file", "config": {"max-size": "1m"}},
                    cap_drop=["ALL"], read_only=True, security_opt=["no-new-privileges"],
                )
                return parse_probe(out.decode(errors="replace") if isinstance(out, bytes) else str(out))
            except (docker.errors.DockerException, ValueError, OSError) as exc:
                errors.append(f"{image}: {exc}")
        raise EngineError(
            "Could not measure the free space of the engine's storage: set ARMSTACK_ENGINE_ROOT to a path where "
            "this process sees the engine's data root" + (f" (probe failed: {'; '.join(errors)[:300]})" if errors
                                                          else " (no image of the stack to probe with yet)") + ".")

    # -- images -------------------------------------------------------------------------------

    def images(self, owned: Mapping[str, str], last_used: Mapping[str, float], *,
               unique_sizes: bool = False) -> tuple[list[ImageInfo], int]:
        """Every top-level engine image as :class:`ImageInfo`, and the build cache size.

        ``owned`` maps the ids of images the runtime built or pulled for the stack to their
        service; only those are the stack's. Labels never are: an image built ``FROM`` one of
        the stack's inherits its labels, and ``docker commit`` copies a container's.
        ``unique_sizes`` asks the engine for shared sizes (``docker system df``, slower) so the
        bytes an eviction frees are not overestimated by layers other images share.
        """
        cache = 0
        if unique_sizes:
            df = self.api.df()
            rows = df.get("Images") or []
            cache = sum(int(b.get("Size") or 0) for b in (df.get("BuildCache") or []) if not b.get("InUse"))
        else:
            rows = self.api.images()
        out: list[ImageInfo] = []
        for row in rows:
            size = int(row.get("Size") or 0)
            shared = int(row.get("SharedSize") or -1)
            if shared > 0:
                size = max(0, size - shared)
            iid = row["Id"]
            tags = tuple(t for t in (row.get("RepoTags") or ()) if t and t != "<none>:<none>")
            out.append(ImageInfo(id=iid, size=size, owned=iid in owned, last_used=last_used.get(iid, 0.0),
                                 created_at=float(row.get("Created") or 0), tags=tags,
                                 service=owned.get(iid, "")))
        return out, cache

    def image_id(self, ref: str) -> str | None:
        try:
            return str(self.api.inspect_image(ref)["Id"])
        except (docker.errors.DockerException, OSError):
            return None

    def remove_image(self, image_id: str, tags: Iterable[str] = ()) -> str | None:
        """Remove one image (never forced: an image a container uses stays); an error sentence or None."""
        try:
            self.api.remove_image(image_id, force=False, noprune=False)
            return None
        except docker.errors.NotFound:
            return None
        except docker.errors.APIError as exc:
            text = str(exc.explanation or exc)
            if "referenced in multiple repositories" in text and tags:
                # Untag each name; the last untag deletes the image.
                try:
                    for tag in tags:
                        with contextlib.suppress(docker.errors.NotFound):
                            self.api.remove_image(tag, force=False, noprune=False)
                    return None
                except docker.errors.APIError as exc2:
                    text = str(exc2.explanation or exc2)
            return f"Could not remove image {image_id[:19]}: {text}."
        except OSError as exc:
            return f"Could not remove image {image_id[:19]}: the engine is unreachable ({exc})."

    def prune_build_cache(self, keep: int = 0) -> tuple[int, str | None]:
        """Prune the engine's build cache down to ``keep`` bytes; (bytes freed, error sentence)."""
        try:
            params = {"keep-storage": keep} if keep else {}
            url = self.api._url("/build/prune")
            res = self.api._result(self.api._post(url, params=params), True)
            return int(res.get("SpaceReclaimed") or 0), None
        except (docker.errors.DockerException, OSError) as exc:
            return 0, f"Could not prune the build cache: {exc}."

    def dangling_owned(self, owned: Iterable[str]) -> list[str]:
        """Untagged images among ``owned`` (the stack's builds, left when a tag moved on)."""
        mine = set(owned)
        try:
            rows = self.api.images(filters={"dangling": True})
        except (docker.errors.DockerException, OSError):
            return []
        return [str(r["Id"]) for r in rows if r["Id"] in mine]

    def remove_build_leftovers(self, created: Iterable[str]) -> list[str]:
        """Remove the layers a failed build left: the images in ``created`` (ids, maybe short, that
        the build itself made) that are untagged and unused. Leaves first, so each removal may
        expose its parent. Nothing else is touched, however recent. Ids removed."""
        wanted = {c.removeprefix("sha256:") for c in created if c}
        if not wanted:
            return []

        def made_by_build(iid: str) -> bool:
            bare = iid.removeprefix("sha256:")
            return any(bare.startswith(w) for w in wanted)

        removed: list[str] = []
        try:
            used = {c.get("ImageID") for c in self.api.containers(all=True)}
            for _ in range(64):   # one layer per Dockerfile step at most; bounded anyway
                rows = self.api.images(all=True)
                parents = {r.get("ParentId") for r in rows}
                victims = [r["Id"] for r in rows
                           if made_by_build(r["Id"])
                           and not [t for t in (r.get("RepoTags") or ()) if t != "<none>:<none>"]
                           and r["Id"] not in parents and r["Id"] not in used]
                if not victims:
                    break
                for iid in victims:
                    if self.remove_image(iid) is None:
                        removed.append(iid)
                    else:
                        used.add(iid)   # could not: never try it again in this pass
        except (docker.errors.DockerException, OSError):
            pass
        return removed

    def owned_containers(self) -> list[dict[str, object]]:
        return list(self.api.containers(all=True, filters={"label": f"{L.STACK}={self.project}"}))

    def remove_container(self, container_id: str) -> str | None:
        try:
            self.api.remove_container(container_id, v=False, force=True)   # v=False: volumes hold data
            return None
        except docker.errors.NotFound:
            return None
        except (docker.errors.DockerException, OSError) as exc:
            return f"Could not remove container {container_id[:12]}: {exc}."
