"""Reading the legacy builder's output stream: steps, cache hits, new layers, the built image.

Pure: fed the decoded chunks of ``APIClient.build(decode=True)``, it keeps the counts the build
report shows and the ids of the images the build created (removed again if the update fails).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_STEP = re.compile(r"^Step (\d+)/(\d+)\s*:")
_BUILT = re.compile(r"^Successfully built ([0-9a-f]{12,64})\s*$")
_LAYER = re.compile(r"^\s*---> ([0-9a-f]{12,64})\s*$")   # the image a build step produced


@dataclass
class BuildLog:
    """What one build's output said so far; ``label_steps`` are the ``LABEL k=`` prefixes the
    runtime's own labels appear as (not the Dockerfile's steps)."""

    label_steps: tuple[str, ...]
    made: list[str] = field(default_factory=list)   # new layers and built images, oldest first
    steps: int = 0
    cached: int = 0
    image_id: str | None = None
    errors: list[str] = field(default_factory=list)
    _in_label: bool = False
    _from_step: bool = False
    _reused: bool = False

    def feed(self, chunk: Mapping[str, Any]) -> list[str]:
        """Take one chunk; returns the lines of it to show (blank ones dropped)."""
        if "error" in chunk:
            self.errors.append(str(chunk.get("error", "")).strip())
            return []
        aux = chunk.get("aux")
        if isinstance(aux, dict) and "ID" in aux:
            self.image_id = aux["ID"]
        text = chunk.get("stream")
        if not text:
            return []
        shown = []
        for line in str(text).splitlines():
            if line.strip():
                self._line(line)
                shown.append(line.rstrip())
        return shown

    def _line(self, line: str) -> None:
        built = _BUILT.match(line.strip())
        if built and self.image_id is None:
            self.image_id = built.group(1)
        m = _STEP.match(line)
        layer = _LAYER.match(line)
        if m:
            # The legacy builder appends our labels as extra LABEL steps; they are not the
            # Dockerfile's, so they count neither as steps nor cache hits.
            instruction = line[m.end():].strip()
            self._in_label = instruction.startswith(self.label_steps)
            self._from_step = instruction.upper().startswith("FROM ")
            self._reused = False
            if not self._in_label:
                self.steps += 1
        elif line.strip() == "---> Using cache":
            self._reused = True
            if not self._in_label:
                self.cached += 1
        elif layer and not self._from_step and not self._reused:
            self.made.append(layer.group(1))   # a new layer: neither the base nor a cache hit
