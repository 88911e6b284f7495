"""The peers armstack is measured against, run on the same emulated device.

- Debian's docker-compose 1.29 (compose v1), in an image of the device's arch, driving the
  device's engine through its socket, exactly where the original resin.io recipe ran it.
- The recipe's keep-alive loop, re-implemented from its description: every N seconds, if
  ``docker-compose ps`` shows any container not Up, ``docker-compose down`` then ``up -d``.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import docker
import docker.errors

from harness import images
from harness.arch import get_arch
from harness.progress import step

RECIPE_LOOP = r"""
keep_alive() {
    if [ "$(docker-compose ps 2>&1 | tail -n+3 | grep -v Up | wc -l)" -ne 0 ]; then
        echo "A container has exited. Restarting docker stack."
        docker-compose down
        docker-compose up -d
    fi
}
while true; do
    sleep "$INTERVAL"
    keep_alive
done
"""
SOCKET = "/run/armstack/docker.sock"   # the device engine's socket, in the device's own namespace


def compose_image(arch_name: str, client: docker.DockerClient | None = None) -> str:
    """An image of ``arch`` with Debian's docker-compose 1.29 (built once, cached by label)."""
    arch = get_arch(arch_name)
    client = client or docker.from_env()
    base = images.build_base("debian", arch, client)
    dockerfile = (f"FROM {base}\nRUN apt-get update && apt-get install -y --no-install-recommends docker-compose "
                  "&& rm -rf /var/lib/apt/lists/*\nWORKDIR /stack\n")
    key = hashlib.sha256((dockerfile + RECIPE_LOOP).encode()).hexdigest()[:16]
    tag = f"{images.prefix()}/compose-baseline:1.29-{arch.name}"
    try:
        if (client.images.get(tag).labels or {}).get(images.LABEL_KEY) == key:
            return tag
    except docker.errors.ImageNotFound:
        pass
    with tempfile.TemporaryDirectory() as ctx:
        (Path(ctx) / "Dockerfile").write_text(dockerfile)
        with step(f"image {tag} (Debian docker-compose 1.29)") as update:
            images._build(client, Path(ctx), tag, arch, update, labels={images.LABEL_KEY: key})
    return tag


class Compose:
    """docker-compose 1.29 run on the device against the device engine, for one project."""

    def __init__(self, device: Any, stack_dir: str, project: str, compose_file: str = "compose.yaml"):
        self.device, self.stack_dir, self.project, self.compose_file = device, stack_dir, project, compose_file
        tag = compose_image(device.arch.name, device.host)
        images.load_into(device.engine, device.host, tag, ("armstack-bench/compose:1.29",))
        self.image = "armstack-bench/compose:1.29"

    def _kwargs(self) -> dict[str, Any]:
        return {"volumes": {SOCKET: {"bind": "/var/run/docker.sock", "mode": "rw"},
                            self.stack_dir: {"bind": self.stack_dir, "mode": "rw"}},
                "working_dir": self.stack_dir, "environment": self._env(),
                "labels": {"armstack.bench": "compose"}}

    def run(self, *args: str) -> str:
        """``docker-compose ARGS`` to completion; returns its output (raises on failure)."""
        out = self.device.engine.containers.run(self.image, ["docker-compose", *args], remove=True,
                                                stdout=True, stderr=True, **self._kwargs())
        return bytes(out).decode(errors="replace")

    def start_recipe(self, interval: float) -> Any:
        """The keep-alive loop as a background container; returns it (remove it when done)."""
        return self.device.engine.containers.run(
            self.image, ["sh", "-c", RECIPE_LOOP], detach=True,
            **{**self._kwargs(), "environment": {**self._env(), "INTERVAL": str(interval)}})

    def _env(self) -> dict[str, str]:
        # The image has no docker CLI: compose must build through its own API client.
        return {"COMPOSE_PROJECT_NAME": self.project, "COMPOSE_FILE": self.compose_file,
                "COMPOSE_DOCKER_CLI_BUILD": "0", "DOCKER_BUILDKIT": "0"}
