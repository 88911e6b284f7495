"""Reading one stack's containers, images, networks and volumes from the engine.

One filtered list call for the stack's containers, inspect only for what the list lacks.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any, cast

import docker
import docker.errors

from runtime import labels as L
from runtime.engine.session import describe
from runtime.errors import EngineError, EngineUnreachable
from runtime.observed import ContainerStatus, ObservedContainer, ObservedImage, ObservedState
from runtime.ownership import owner_of


def engine_time(value: str | None) -> float | None:
    """Engine RFC3339 timestamps (nanoseconds, 'Z') to epoch seconds; the zero time is None."""
    if not value or value.startswith("0001-"):
        return None
    head, _, frac = value.rstrip("Z").partition(".")
    tz = ""
    for sign in ("+", "-"):
        if sign in frac:
            frac, _, rest = frac.partition(sign)
            tz = sign + rest
    if not tz and value.endswith("Z"):
        tz = "+00:00"
    try:
        base = datetime.fromisoformat(head + (tz or "+00:00")).timestamp()
    except ValueError:
        return None
    return base + (float("0." + frac) if frac.isdigit() else 0.0)


def health_from_status(status: str) -> str | None:
    if "(healthy)" in status:
        return "healthy"
    if "(unhealthy)" in status:
        return "unhealthy"
    if "(health: starting)" in status:
        return "starting"
    return None


def observe(api: Any, project: str) -> ObservedState:
    """What the engine shows of project ``project``; EngineError / EngineUnreachable if it cannot say."""
    try:
        nets = api.networks()
        vols = api.volumes().get("Volumes") or []
        return ObservedState(
            containers=tuple(_containers(api, project)),
            images=tuple(_images(api)),
            networks=frozenset(n["Name"] for n in nets),
            volumes=frozenset(v["Name"] for v in vols),
            network_owners=tuple(sorted((n["Name"], owner_of(n.get("Labels"))) for n in nets)),
            volume_owners=tuple(sorted((v["Name"], owner_of(v.get("Labels"))) for v in vols)),
        )
    except docker.errors.DockerException as exc:
        raise EngineError(f"Could not read the state of stack {project!r} from the engine: "
                          f"{describe(exc)}.") from exc
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise EngineUnreachable(f"The Docker engine is unreachable: {exc}.") from exc


def _containers(api: Any, project: str) -> Iterator[ObservedContainer]:
    # Only containers this runtime created carry a config hash; the stack label alone could
    # come from somewhere else (a probe, a hand-made container given the label).
    rows = api.containers(all=True, filters={"label": [f"{L.STACK}={project}", L.CONFIG_HASH]})
    for row in rows:
        labels = row.get("Labels") or {}
        state = row.get("State") or "created"
        status_text = row.get("Status") or ""
        info: dict[str, Any] = {}
        try:
            # The list lacks exit code, OOM and timestamps; one inspect each is cheap on a socket.
            info = api.inspect_container(row["Id"])
        except docker.errors.NotFound:
            continue
        st = info.get("State") or {}
        health = (st.get("Health") or {}).get("Status") or health_from_status(status_text)
        # Inspect is newer than the list row: a container may have died in between.
        state = st.get("Status") or state
        running = state in ("running", "restarting", "paused")
        name = (row.get("Names") or ["/" + row["Id"][:12]])[0].lstrip("/")
        yield ObservedContainer(
            id=row["Id"],
            name=name,
            service=labels.get(L.SERVICE, ""),
            config_hash=labels.get(L.CONFIG_HASH, ""),
            image_id=row.get("ImageID") or info.get("Image", ""),
            status=cast(ContainerStatus, state),
            health=health if health in ("starting", "healthy", "unhealthy") else None,  # type: ignore[arg-type]
            exit_code=None if running else st.get("ExitCode"),
            oom_killed=bool(st.get("OOMKilled")),
            started_at=engine_time(st.get("StartedAt")),
            finished_at=None if running else engine_time(st.get("FinishedAt")),
            created_at=float(row.get("Created") or 0),
        )


def _images(api: Any) -> Iterator[ObservedImage]:
    for img in api.images(all=False):
        tags = tuple(t for t in (img.get("RepoTags") or ()) if t and t != "<none>:<none>")
        yield ObservedImage(
            id=img["Id"],
            tags=tags,
            labels=tuple(sorted((img.get("Labels") or {}).items())),
            size=int(img.get("Size") or 0),
            created_at=float(img.get("Created") or 0),
        )
