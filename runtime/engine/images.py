"""A service's image: built (and labelled, then tagged), pulled, or removed."""

from __future__ import annotations

import time

import docker
import docker.errors

from runtime import labels as L
from runtime.actions import Build, BuildReport, Pull, RemoveImage
from runtime.buildctx import context_tar
from runtime.engine.buildlog import BuildLog
from runtime.engine.session import EngineSession, describe, looks_disk_full, looks_offline
from runtime.errors import DiskFullError, EngineError
from runtime.imagelabels import label_image


def split_ref(ref: str) -> tuple[str, str]:
    """``repo[:tag]`` or ``repo@digest`` as the (repository, tag or digest) the API calls take."""
    if "@" in ref:
        repo, digest = ref.split("@", 1)
        return repo, digest
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag
    return ref, "latest"


class Images:
    """Builds, pulls and removes the images of one stack's services."""

    def __init__(self, session: EngineSession) -> None:
        self.session = session

    def build(self, a: Build, made: list[str] | None = None) -> BuildReport:
        """Build and tag the service's image; ``made`` collects the ids of the images it creates."""
        made = [] if made is None else made
        session, api = self.session, self.session.api
        spec = session.stack.service(a.service)
        if spec.build is None:
            raise EngineError(f"Could not build {a.service!r}: the service has no build section.", service=a.service)
        build = spec.build
        t0 = time.monotonic()
        # A stream, not the whole context in memory; a context that cannot be sent raises
        # BuildContextError (an EngineError) here: a failed build of this service.
        context = context_tar(build, service=a.service)

        # The file's build labels first: the runtime's ownership labels always win. They are put
        # on the built image by one commit (runtime.imagelabels), not as the engine's LABEL steps.
        labels = {**dict(build.labels), **session.extra_labels, L.IMAGE_STACK: session.stack.project,
                  L.IMAGE_SERVICE: a.service, L.BUILD_HASH: a.build_hash}
        log = BuildLog(tuple(f"LABEL {k}=" for k in labels), made)
        build_labels: dict[str, str] = {}   # labels the build itself applies (see below)

        def run() -> None:
            # No tag here: the image is tagged below, only once the build finished and its id is
            # known, so an interrupted build (power cut, error) can never leave the service's tag
            # on a half-built image. Its finished steps stay as untagged cache layers.
            stream = api.build(
                fileobj=context, custom_context=True, dockerfile=build.dockerfile, buildargs=dict(build.args),
                target=build.target, rm=True, forcerm=True, decode=True,
                labels=build_labels, shmsize=build.shm_size,
                extra_hosts=dict(build.extra_hosts) or None, network_mode=build.network,
                nocache=build.no_cache, pull=build.pull,
            )
            for chunk in stream:
                for line in log.feed(chunk):
                    session.show(a.service, line, stream="build")

        try:
            session.call(f"build the image of service {a.service!r}", run, a.service)
        except EngineError:
            if context.error is not None:  # not the engine: the context failed while being sent
                raise context.error from None
            raise
        if log.errors:
            text = log.errors[-1]
            if looks_disk_full(text):
                raise DiskFullError(f"Could not build the image of service {a.service!r}: the disk is full ({text}).",
                                    service=a.service)
            raise EngineError(f"Could not build the image of service {a.service!r}: {text}.", service=a.service)
        if log.image_id is None:
            raise EngineError(f"Could not build the image of service {a.service!r}: the engine did not say which "
                              "image it built.", service=a.service)
        if log.image_id not in made:
            made.append(log.image_id)
        unlabelled = log.image_id
        labelled = session.call(f"label the image of service {a.service!r}",
                                lambda: label_image(api, unlabelled, labels), a.service)
        if labelled is None:
            # An image without a command cannot be labelled by a commit: its build labels it, all
            # of its other steps now taken from the cache.
            build_labels.update(labels)
            counted = log.steps, log.cached   # the report counts the Dockerfile's steps once
            context, log.image_id = context_tar(build, service=a.service), None
            log.errors.clear()
            session.call(f"build the image of service {a.service!r}", run, a.service)
            log.steps, log.cached = counted
            if log.errors or log.image_id is None:
                raise EngineError(f"Could not label the image of service {a.service!r}: "
                                  f"{log.errors[-1] if log.errors else 'the engine did not say which image it built'}.",
                                  service=a.service)
            labelled = log.image_id
        if labelled not in made:
            made.append(labelled)
        repo, tag = split_ref(a.image)
        built_id = labelled
        session.call(f"tag the image of service {a.service!r} as {a.image!r}",
                     lambda: api.tag(built_id, repo, tag=tag), a.service)
        return BuildReport(a.service, log.steps, log.cached, round(time.monotonic() - t0, 3))

    def pull(self, a: Pull) -> None:
        repo, tag = split_ref(a.image)
        try:
            self.session.api.pull(repo, tag=tag)
        except (docker.errors.DockerException, OSError) as exc:
            text = describe(exc)
            if looks_disk_full(text):
                raise DiskFullError(f"Could not pull image {a.image!r} for service {a.service!r}: the disk is full "
                                    f"({text}).", service=a.service) from exc
            hint = (" No registry is reachable from this engine: build the image locally or load it with "
                    "`docker load`." if looks_offline(text) or isinstance(exc, docker.errors.APIError) else "")
            raise EngineError(f"Could not pull image {a.image!r} for service {a.service!r}: {text}.{hint}",
                              service=a.service) from exc

    def remove(self, a: RemoveImage) -> None:
        api = self.session.api

        def run() -> bool:
            try:
                # noprune=False: the image's untagged parent layers go too, which is the point
                # of delete-then-download (room on the card), even though it costs the cache.
                api.remove_image(a.image_id, force=False, noprune=False)
                return True
            except docker.errors.NotFound:
                return False
            except docker.errors.APIError as exc:
                if exc.status_code == 409:   # still used or tagged elsewhere: not ours to force
                    self.session.show(a.service, f"image {a.image_id[:19]} kept: {describe(exc)}", stream="build")
                    return False
                raise

        self.session.call(f"remove the old image of service {a.service!r}", run, a.service)
