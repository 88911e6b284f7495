"""Build the ``Desired`` state: the stack plus build-input hashes, which need file and engine reads.

The build hash covers the base images' ids, so the engine's images are listed once here.
A Dockerfile that cannot be read gets no hash: the planner then builds, and the build reports
the real error with the service's name.
"""

from __future__ import annotations

import docker

from runtime.buildctx import build_context_hash, dockerfile_bases, read_dockerfile
from runtime.compose.model import StackSpec
from runtime.imageref import normalize_ref
from runtime.observed import Desired


def base_image_ids(client: docker.DockerClient) -> dict[str, str]:
    """Every tag the engine knows, in normalised form (``runtime.imageref``), mapped to its image id."""
    out: dict[str, str] = {}
    for img in client.api.images():
        for tag in img.get("RepoTags") or ():
            if tag and tag != "<none>:<none>":
                out[normalize_ref(tag)] = img["Id"]
    return out


def make_desired(client: docker.DockerClient, stack: StackSpec, *, release: str = "") -> Desired:
    hashes: list[tuple[str, str]] = []
    known: dict[str, str] | None = None
    for spec in stack.services:
        if spec.build is None:
            continue
        try:
            # Refuses a FIFO or device (reading would hang or never end); a BuildContextError is
            # an OSError, so that service gets no hash and its build reports the problem.
            text = read_dockerfile(spec.build, service=spec.name).decode(errors="replace")
        except OSError:
            continue
        if known is None:
            known = base_image_ids(client)
        bases = dockerfile_bases(text, dict(spec.build.args))
        try:
            ids = {b: known[normalize_ref(b)] for b in bases if normalize_ref(b) in known}
            hashes.append((spec.name, build_context_hash(spec.build, ids, service=spec.name)))
        except OSError:
            continue
    return Desired(stack=stack, build_hashes=tuple(hashes), release=release)
