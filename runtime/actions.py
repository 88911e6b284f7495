"""The steps a plan is made of: small frozen dataclasses, no behaviour.

The planner returns a list of these; the executor is the only code that turns them into
engine calls. Each action names the service it is for so reports and logs can say so.
"""

from __future__ import annotations

from dataclasses import dataclass


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
