"""How to run a Docker engine inside a container on this host: privileged, or the capability recipe.

``--privileged`` is the normal way, but it fails where the host's capability bounding set
lacks one (seen: CAP_SYS_RESOURCE → "unable to apply caps: operation not permitted"). Then the
recipe grants every capability except the missing one, with seccomp/apparmor unconfined and
the host cgroup tree. The choice is probed once per process, not configured by hand.
"""

from __future__ import annotations

import os
from typing import Any

import docker
import docker.errors

from harness.session import labels

# Loop devices for the SD card image (block major 7), and FUSE for the card's write cache (cardfs).
_LOOP = {"devices": ["/dev/loop-control:/dev/loop-control:rwm"]
         + (["/dev/fuse:/dev/fuse:rwm"] if os.path.exists("/dev/fuse") else []),
         "device_cgroup_rules": ["b 7:* rmw"]}
_COMMON = {"cgroupns": "host", "volumes": {"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}}}


def _missing_caps() -> list[str]:
    """Capabilities this process's bounding set lacks (what --privileged would fail to grant)."""
    names = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
             "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
             "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
             "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
             "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
             "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
    try:
        with open("/proc/self/status") as f:
            bnd = next(int(ln.split()[1], 16) for ln in f if ln.startswith("CapBnd:"))
    except (OSError, StopIteration, ValueError):
        return []
    return [n for i, n in enumerate(names) if not bnd >> i & 1]


def engine_run_kwargs(client: docker.DockerClient, probe_image: str) -> dict[str, Any]:
    """docker-py ``create`` kwargs that let a container run dockerd with loop devices."""
    # Probed once per engine, not per client object: each device makes its own client, and the
    # probe (a container started and removed) costs about a second.
    key = (str(client.api.base_url), probe_image)
    if key not in _PROBED:
        _PROBED[key] = _probe(client, probe_image)
    return _PROBED[key]


_PROBED: dict[tuple[str, str], dict[str, Any]] = {}


def _probe(client: docker.DockerClient, probe_image: str) -> dict[str, Any]:
    try:
        c = client.containers.create(probe_image, entrypoint=["true"], privileged=True,
                                     labels=labels(), **_COMMON)
        try:
            c.start()
            c.wait(timeout=30)
            return {"privileged": True, **_COMMON}
        finally:
            c.remove(force=True, v=True)   # with the anonymous volumes its image declares
    except docker.errors.APIError as e:
        if "caps" not in str(e) and "operation not permitted" not in str(e):
            raise
    missing = _missing_caps() or ["SYS_RESOURCE"]
    return {
        "cap_add": ["ALL"],
        "cap_drop": missing,
        "security_opt": ["seccomp=unconfined", "apparmor=unconfined"],
        **_LOOP,
        **_COMMON,
    }
