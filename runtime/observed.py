"""What the engine looks like right now, as plain data.

The executor reads the engine into these; the planner reads only these. Building them by
hand is how the planner is tested without Docker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ContainerStatus = Literal["created", "running", "restarting", "paused", "exited", "dead", "removing"]
Health = Literal["starting", "healthy", "unhealthy"]


@dataclass(frozen=True)
class ObservedContainer:
    id: str
    name: str
    service: str
    config_hash: str
    image_id: str
    status: ContainerStatus
    health: Health | None = None     # None: the container has no healthcheck
    exit_code: int | None = None
    oom_killed: bool = False
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    created_at: float = 0.0

    @property
    def running(self) -> bool:
        return self.status in ("running", "restarting", "paused")


@dataclass(frozen=True)
class ObservedImage:
    id: str
    tags: tuple[str, ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    size: int = 0
    created_at: float = 0.0
    last_used: float = 0.0   # when a container last ran it (LRU order for eviction)

    def label(self, key: str) -> str | None:
        return dict(self.labels).get(key)


@dataclass(frozen=True)
class ObservedState:
    """The stack's containers plus the engine objects the plan depends on."""

    containers: tuple[ObservedContainer, ...] = ()      # only the stack's own (by label)
    images: tuple[ObservedImage, ...] = ()              # all images on the engine
    networks: frozenset[str] = frozenset()              # engine-side names present
    volumes: frozenset[str] = frozenset()               # engine-side names present
    # Engine-side name -> the project its labels name ("" or absent: unlabelled). Names collide
    # across projects (``runtime.ownership``), so only these say what ``down`` may remove.
    network_owners: tuple[tuple[str, str], ...] = ()
    volume_owners: tuple[tuple[str, str], ...] = ()

    def containers_of(self, service: str) -> tuple[ObservedContainer, ...]:
        return tuple(c for c in self.containers if c.service == service)

    def network_owner(self, name: str) -> str:
        return dict(self.network_owners).get(name, "")

    def volume_owner(self, name: str) -> str:
        return dict(self.volume_owners).get(name, "")

    def image(self, ref: str) -> ObservedImage | None:
        """The image a reference (tag or id) names, as the engine would resolve it.

        References are compared in their normalised form: ``docker.io/library/postgres:14`` is
        the ``postgres:14`` the engine lists.
        """
        wanted = normalize_ref(ref)
        for img in self.images:
            if img.id == ref or any(normalize_ref(t) == wanted for t in img.tags):
                return img
        return None


@dataclass(frozen=True)
class ServiceRuntime:
    """What the supervisor remembers of a service between plans (restarts, backoff)."""

    restarts: int = 0
    next_start_at: float | None = None   # in backoff until then (monotonic clock)
    crash_looping: bool = False
    last_exit_code: int | None = None


@dataclass(frozen=True)
class Policy:
    """Knobs of one planning round, plus the clock so the planner stays pure."""

    now: float = 0.0
    restart_unhealthy: bool = True
    remove_orphans: bool = True
    runtime: tuple[tuple[str, ServiceRuntime], ...] = ()   # per service
    # When the current apply began (epoch seconds). A container that stopped before it is
    # started whatever its restart policy, as `docker compose up` does: after a power cut or a
    # reboot the whole stack comes back. Exits after it follow the restart policy.
    applied_at: float | None = None
    # Services whose new image failed to build/pull in the current apply. Their update strategy
    # is suspended: a kill-then-download service gets its old container started again instead
    # of staying down until the next apply.
    image_failed: frozenset[str] = frozenset()

    def service_runtime(self, service: str) -> ServiceRuntime:
        return dict(self.runtime).get(service, ServiceRuntime())

    def held(self, service: str) -> bool:
        """True while the service waits out its restart backoff."""
        nxt = self.service_runtime(service).next_start_at
        return nxt is not None and nxt > self.now


@dataclass(frozen=True)
class Desired:
    """The desired stack plus the per-service facts that need I/O to learn (build input hashes)."""

    stack: StackSpec
    build_hashes: tuple[tuple[str, str], ...] = ()   # service -> hash of its build inputs
    release: str = ""
    # service -> image id it must run, whatever its tag names now: a rollback puts the previous
    # release's image back without a build or a pull (runtime.rollback).
    pinned_images: tuple[tuple[str, str], ...] = ()

    def build_hash(self, service: str) -> str | None:
        return dict(self.build_hashes).get(service)

    def pinned_image(self, service: str) -> str | None:
        return dict(self.pinned_images).get(service)


from runtime.compose.model import StackSpec  # noqa: E402
from runtime.imageref import normalize_ref  # noqa: E402  (kept last: model has no runtime imports)
