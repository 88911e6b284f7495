"""testcontainers' reaper (Ryuk) off for the containers the kit starts, and only for them.

Ryuk is an image pulled from a registry, which a device test cannot count on; the kit removes
what it made itself, by label (``harness.session``). A process-wide switch (the environment
variable testcontainers reads) would also turn Ryuk off for every other testcontainers user in
the same pytest run, so the kit sets testcontainers' own configuration object around each start
of its containers and puts the previous value back afterwards.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_lock = threading.Lock()
_depth = 0            # starts under way (devices may start from several threads)
_previous = False     # what testcontainers' configuration said before the first of them


@contextmanager
def reaper_disabled(config: Any = None) -> Iterator[None]:
    """Ryuk off while the block runs; ``config`` is testcontainers' configuration (its global one
    unless given)."""
    global _depth, _previous
    if config is None:
        from testcontainers.core.config import testcontainers_config as config
    with _lock:
        if _depth == 0:
            _previous = bool(config.ryuk_disabled)
            config.ryuk_disabled = True
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                config.ryuk_disabled = _previous


def start(container: Any) -> Any:
    """``container.start()`` (a testcontainers ``DockerContainer``) without a reaper."""
    with reaper_disabled():
        return container.start()
