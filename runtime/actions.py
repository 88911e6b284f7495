"""The steps a plan is made of (small frozen dataclasses), how each is described, and their results.

The planner returns a list of actions; the executor is the only code that turns them into
engine calls, and returns one ``ActionResult`` each. Each action names the service it is for
so reports and logs can say so. ``Action`` is the closed union of the kinds: code that must
handle every kind matches on it and ends in ``assert_never``, so mypy names a missing case.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import assert_never

from runtime.errors import ArmstackError


@dataclass(frozen=True)
class EnsureNetwork:
    name: str          # engine-side name


@dataclass(frozen=True)
class EnsureVolume:
    name: str          # engine-side name


@dataclass(frozen=True)
class Build:
    service: str
    image: str         # the tag to give the built image
    build_hash: str    # stamped on the image as a label; unchanged hash means no build


@dataclass(frozen=True)
class Pull:
    service: str
    image: str


@dataclass(frozen=True)
class Create:
    """Create and start a container for a service that has none."""

    service: str
    image_id: str
    config_hash: str


@dataclass(frozen=True)
class Start:
    """Start a stopped container again (a restart after a crash keeps the container)."""

    service: str
    container_id: str


@dataclass(frozen=True)
class Restart:
    """Restart a running container (e.g. unhealthy)."""

    service: str
    container_id: str
    reason: str = ""


@dataclass(frozen=True)
class Recreate:
    """Replace a container whose configuration or image changed."""

    service: str
    container_id: str
    image_id: str
    config_hash: str


@dataclass(frozen=True)
class Remove:
    """Stop and remove a container the desired state does not want."""

    service: str
    container_id: str
    reason: str = ""


@dataclass(frozen=True)
class Stop:
    """Stop a container but keep it: ``kill-then-download`` frees memory and CPU before the
    download/build, and the stopped container stays as the fallback if that fails."""

    service: str
    container_id: str
    reason: str = ""


@dataclass(frozen=True)
class RemoveImage:
    """Remove an image a service is about to replace (``delete-then-download``: room on the card)."""

    service: str
    image_id: str


@dataclass(frozen=True)
class Wait:
    """Nothing to do for this service yet: it waits for a dependency (reported, not executed)."""

    service: str
    on: str
    condition: str


@dataclass(frozen=True)
class RemoveNetwork:
    """Remove a stack network (when the stack is taken down)."""

    name: str          # engine-side name


@dataclass(frozen=True)
class RemoveVolume:
    """Remove a stack volume: only on an explicit down with volumes, never as cleanup."""

    name: str          # engine-side name


Action = (
    EnsureNetwork | EnsureVolume | Build | Pull | Create | Start | Restart | Recreate | Remove | Wait
    | RemoveNetwork | RemoveVolume | Stop | RemoveImage
)


def describe(a: Action) -> str:
    """The runtime's log line for an action it is about to run (every kind has one: mypy checks)."""
    match a:
        case Build():
            return f"building {a.image} for service {a.service}"
        case Pull():
            return f"pulling {a.image} for service {a.service}"
        case Start():
            return f"starting service {a.service} (container {a.container_id[:12]})"
        case Restart():
            return f"restarting service {a.service}{' (' + a.reason + ')' if a.reason else ''}"
        case Recreate():
            return f"recreating service {a.service} (configuration or image changed)"
        case Create():
            return f"creating service {a.service}"
        case Stop():
            return f"stopping service {a.service} before its update (kill-then-download)"
        case Remove(reason="update"):
            return f"removing service {a.service} before its update (delete-then-download)"
        case Remove(reason="orphan"):
            return f"removing service {a.service} (no longer in the file; its volumes stay)"
        case Remove():
            return f"remove {a.service}"
        case RemoveImage():
            return f"removing the old image {a.image_id.removeprefix('sha256:')[:12]} of service {a.service}"
        case EnsureNetwork():
            return f"creating network {a.name}"
        case EnsureVolume():
            return f"creating volume {a.name}"
        case RemoveNetwork():
            return f"removenetwork {a.name}"
        case RemoveVolume():
            return f"removevolume {a.name}"
        case Wait():
            return f"wait {a.service}"
        case _:
            assert_never(a)


@dataclass(frozen=True)
class BuildReport:
    service: str
    steps: int
    cached: int
    seconds: float


@dataclass(frozen=True)
class ActionResult:
    """What running one action did; ``error`` is the error itself when it failed, so callers
    react to its class (``DiskFullError``, ``EngineUnreachable``) rather than to its text."""

    action: Action
    ok: bool
    error: ArmstackError | None = None
    seconds: float = 0.0
    container_id: str | None = None
    build: BuildReport | None = None
    # Recreate, or Create after a delete-then-download: seconds from the stop of the old
    # container (maybe in an earlier round) until the new one runs.
    downtime: float | None = None
    # Build: ids (maybe short) of the images the build itself made, step layers and the result,
    # also when it failed: the only images a cleanup after a failed build may remove.
    images: tuple[str, ...] = ()

    @property
    def service(self) -> str | None:
        return getattr(self.action, "service", None)

    @property
    def message(self) -> str | None:
        """The error as the sentence to show, or None when the action succeeded."""
        return None if self.error is None else (str(self.error) or type(self.error).__name__)
