"""Compose files in, validated frozen specs out (pure: no engine access).

``load_stack(path)`` finds and reads a compose file, ``load_text(text, ...)`` reads one from a
string; both return a :class:`LoadResult` (the :class:`StackSpec` and any warnings) or raise
:class:`~runtime.errors.ComposeError` listing every problem found.
"""

from runtime.compose.loader import COMPOSE_FILENAMES, LoadResult, load_stack, load_text
from runtime.compose.model import (
    BuildSpec,
    Dependency,
    Healthcheck,
    LoggingSpec,
    NetworkSpec,
    PortSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
    VolumeMount,
    VolumesFrom,
    VolumeSpec,
)

__all__ = [
    "COMPOSE_FILENAMES",
    "BuildSpec",
    "Dependency",
    "Healthcheck",
    "LoadResult",
    "LoggingSpec",
    "NetworkSpec",
    "PortSpec",
    "RestartPolicy",
    "ServiceSpec",
    "StackSpec",
    "VolumeMount",
    "VolumeSpec",
    "VolumesFrom",
    "load_stack",
    "load_text",
]
