"""What every engine operation of one stack shares, and how engine failures become sentences."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import docker
import docker.errors

from runtime.compose.model import StackSpec
from runtime.errors import DiskFullError, EngineError, EngineUnreachable
from runtime.observed import Desired

MAX_WORKERS = 4   # engine calls in flight at once for one stack (parallel starts, parallel stops)


class BuildOutput(Protocol):
    """Where build output goes (``runtime.logs.LogPresenter`` fits)."""

    def line(self, service: str, text: str, *, stream: str = ..., time: float | None = ...) -> None: ...


def describe(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError):
        return str(exc.explanation or exc)
    return str(exc) or type(exc).__name__


def looks_offline(text: str) -> bool:
    t = text.lower()
    return any(s in t for s in ("no such host", "dial tcp", "timeout", "connection refused", "network is unreachable"))


def looks_disk_full(text: str) -> bool:
    t = text.lower()
    return "no space left on device" in t or "enospc" in t


class EngineSession:
    """The engine API, the desired stack (replaced on a reload) and where output goes."""

    def __init__(self, client: docker.DockerClient, desired: Desired, *, output: BuildOutput | None = None,
                 extra_labels: Mapping[str, str] | None = None) -> None:
        self.api = client.api
        self.desired = desired
        self.output = output
        self.extra_labels = dict(extra_labels or {})   # RuntimeSettings.extra_labels

    @property
    def stack(self) -> StackSpec:
        return self.desired.stack

    def call(self, what: str, fn: Callable[[], Any], service: str | None = None) -> Any:
        """Call the engine, turning every docker-py failure into one EngineError sentence."""
        try:
            return fn()
        except docker.errors.DockerException as exc:
            text = describe(exc)
            if looks_disk_full(text):
                raise DiskFullError(f"Could not {what}: the engine's disk is full ({text}).", service=service) from exc
            raise EngineError(f"Could not {what}: {text}.", service=service) from exc
        except OSError as exc:
            raise EngineUnreachable(f"Could not {what}: the Docker engine is unreachable ({exc}).",
                                    service=service) from exc

    def show(self, service: str, text: str, *, stream: str) -> None:
        """A line of a service's engine output (build, hook), when there is an output."""
        if self.output is not None:
            self.output.line(service, text, stream=stream)

    def warn(self, text: str) -> None:
        """A warning of the runtime itself (the presenter's ``runtime`` line when there is one)."""
        if self.output is None:
            return
        runtime = getattr(self.output, "runtime", None)
        if callable(runtime):
            runtime(text, level="warning")
        else:
            self.output.line("armstack", f"warning: {text}", stream="runtime")
