"""Builds and pulls that failed in the current generation, and what the planner does about them.

A build that failed is not retried until the next apply (a broken Dockerfile would otherwise
rebuild on every event), unless it ran out of space: the disk guard retries that with backoff.
A service whose Build/Pull failed is no longer held down for its update strategy.
"""

from __future__ import annotations

from runtime.actions import Action, Build, Pull
from runtime.compose.model import StackSpec
from runtime.planner import DOWNLOAD_THEN_KILL, update_strategy


class ImageFailures:
    def __init__(self) -> None:
        self._builds: dict[str, str] = {}   # service -> build hash that failed this generation
        self._images: set[str] = set()      # services whose Build/Pull failed this generation

    def new_generation(self) -> None:
        self._builds.clear()
        self._images.clear()

    @property
    def services(self) -> frozenset[str]:
        """Services whose Build/Pull failed this generation (``Policy.image_failed``)."""
        return frozenset(self._images)

    def skip(self, a: Action) -> bool:
        """True for a Build that already failed with the same hash in this generation."""
        return isinstance(a, Build) and self._builds.get(a.service) == a.build_hash

    def failed(self, a: Build | Pull, *, disk_full: bool) -> None:
        """Note a failed Build or Pull; ``disk_full``: it ran out of space."""
        if isinstance(a, Build) and not disk_full:
            self._builds[a.service] = a.build_hash
        self._images.add(a.service)

    def fallback_due(self, held_before: frozenset[str], stack: StackSpec) -> bool:
        """Whether a failed round still needs one more: a service whose update strategy took it
        down before its build/pull failed gets its old container back now, not a reconcile later."""
        newly = self._images - held_before
        return any(update_strategy(stack.service(s)) != DOWNLOAD_THEN_KILL
                   for s in newly if s in stack.service_names)
