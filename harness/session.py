"""Ownership of what the kit creates: labels, and sweeping leftovers of dead sessions.

Every container, volume and network the harness creates carries ``io.armstack.harness`` plus
the session id and the PID of the process that made it. A sweep removes only objects whose
owner process is gone, so pytest-xdist workers and parallel sessions never remove each other's
devices, while the leftovers of a crashed or killed session are cleaned at the next start.
"""

from __future__ import annotations

import os
import socket
import uuid

import docker
import docker.errors

HARNESS = "io.armstack.harness"
SESSION = "io.armstack.session"
OWNER = "io.armstack.owner"      # "<hostname>:<pid>" of the creating process
DEVICE = "io.armstack.device"

SESSION_ID = uuid.uuid4().hex[:10]


def labels(device: str | None = None) -> dict[str, str]:
    out = {HARNESS: "1", SESSION: SESSION_ID, OWNER: f"{socket.gethostname()}:{os.getpid()}"}
    if device:
        out[DEVICE] = device
    return out


def owner_alive(owner: str) -> bool:
    if not owner:
        return False  # harness-labelled but ownerless: nobody will ever clean it up but a sweep
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's object on a shared engine: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def sweep(client: docker.DockerClient, *, everything_of_session: str | None = None) -> list[str]:
    """Remove harness objects whose owner process is dead (or all of one session). Returns names."""
    removed: list[str] = []

    def doomed(lbls: dict[str, str]) -> bool:
        if everything_of_session is not None:
            return lbls.get(SESSION) == everything_of_session
        return not owner_alive(lbls.get(OWNER, ""))

    for c in client.containers.list(all=True, filters={"label": HARNESS}):
        if doomed(c.labels):
            try:
                c.remove(force=True, v=True)
                removed.append(c.name)
            except docker.errors.APIError:   # gone, or being removed by another session's sweep
                pass
    for v in client.volumes.list(filters={"label": HARNESS}):
        if doomed(v.attrs.get("Labels") or {}):
            try:
                v.remove(force=True)
                removed.append(v.name)
            except (docker.errors.NotFound, docker.errors.APIError):
                pass
    for n in client.networks.list(filters={"label": HARNESS}):
        if doomed(n.attrs.get("Labels") or {}):
            try:
                n.remove()
                removed.append(n.name)
            except (docker.errors.NotFound, docker.errors.APIError):
                pass
    return removed
