"""Labels put on a built image in one commit, instead of the engine's LABEL build steps.

The engine's classic builder turns every label of a build request into a LABEL step of its own
appended to the Dockerfile. Each step creates a container from the previous image and commits
it, and, for an image of another arch than the engine's (every image of an emulated device),
prints the engine's platform-mismatch warning into the build's output: a few seconds and as
many warnings per build for the runtime's ownership labels alone. Here the image is built
without them and labelled afterwards by a single commit of a container that is never started,
the same operation a LABEL step performs once; the image's configuration is otherwise unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def can_relabel(config: Mapping[str, Any] | None) -> bool:
    """Whether a commit keeps the image's configuration as it is. A commit fills a missing
    command from the container it commits, so an image without ``Cmd`` or ``Entrypoint`` would
    gain the placeholder the container was created with: such an image is labelled by its build."""
    return config is not None and bool(config.get("Cmd") or config.get("Entrypoint"))


def relabelled_config(config: Mapping[str, Any], labels: Mapping[str, str]) -> dict[str, Any]:
    """The image configuration with ``labels`` over its own (as LABEL steps after its last would)."""
    return {**config, "Labels": {**(config.get("Labels") or {}), **labels}}


def label_image(api: Any, image_id: str, labels: Mapping[str, str]) -> str | None:
    """The id of a new image: ``image_id`` with ``labels`` added; None when ``can_relabel`` says
    it must be labelled by its build instead. ``api`` is a docker ``APIClient``.

    The short-lived container carries no labels of its own: a commit copies the container's
    labels into the image, and a session label there would let a sweep remove the image.
    """
    config = api.inspect_image(image_id).get("Config") or {}
    if not can_relabel(config):
        return None
    container = api.create_container(image_id, network_disabled=True)["Id"]
    try:
        return str(api.commit(container, conf=relabelled_config(config, labels), pause=False)["Id"])
    finally:
        # With its anonymous volumes: an image that declares VOLUME gives the container one each,
        # and nothing else would ever remove them from the card.
        api.remove_container(container, force=True, v=True)
