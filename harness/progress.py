"""Progress for long steps (debootstrap, image builds, loading images into a device).

On a terminal a live display shows each running step, its elapsed time and its latest output
line; elsewhere (CI logs) one line when a step starts and one when it ends, with its duration.

A setup of several steps (a cold start builds root filesystems, then images) runs under a
:func:`plan`: it knows the steps it will run and what each usually costs, so every step's line
says its share of the whole (``[38% of setup]``), and at the end one line gives each step's
measured share. Steps of a plan may run in threads at once (the root filesystems of two arches).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

Update = Callable[[str], None]


@dataclass
class Plan:
    """The steps of one setup and what each is expected to cost (seconds: only ratios matter)."""

    title: str
    expected: dict[str, float]
    done: dict[str, float] = field(default_factory=dict)   # step -> measured seconds
    started: float = field(default_factory=time.monotonic)
    live: Any = None     # a rich Progress on a terminal, else None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def share(self, key: str) -> float | None:
        """The expected share (0..1) of a step in the whole setup, None if it is not part of it."""
        total = sum(self.expected.values())
        if key not in self.expected or total <= 0:
            return None
        return self.expected[key] / total

    def label(self, key: str, description: str) -> str:
        share = self.share(key)
        if share is None:
            return description
        index = list(self.expected).index(key) + 1
        shown = f"{share:.0%}" if share >= 0.005 else "<1%"
        return f"[{index}/{len(self.expected)}, {shown} of {self.title}] {description}"

    def summary(self) -> str:
        """Each finished step's measured share of the summed step time, largest first."""
        total = sum(self.done.values())
        wall = time.monotonic() - self.started
        parts = [f"{key} {sec:.0f}s ({sec / total:.0%})" for key, sec in
                 sorted(self.done.items(), key=lambda kv: -kv[1])] if total > 0 else []
        return f"{self.title} took {wall:.0f}s: " + (", ".join(parts) or "nothing to do")


_active: Plan | None = None


def _say(text: str) -> None:
    # One write per line: steps of a plan run in threads, and print() writes the end separately.
    sys.stderr.write(f"armstack: {text}\n")
    sys.stderr.flush()


@contextmanager
def plan(title: str, expected: Mapping[str, float]) -> Iterator[Plan]:
    """Run the steps ``expected`` names (step key -> usual seconds) as one setup; nothing is shown
    when there is nothing to do. Plans do not nest: an inner one joins the outer."""
    global _active
    if _active is not None or not expected:
        yield _active or Plan(title, {})
        return
    current = Plan(title, dict(expected))
    _active = current
    try:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                          TextColumn("[dim]{task.fields[line]}"), console=Console(stderr=True)) as live:
                current.live = live
                yield current
        else:
            yield current
    finally:
        _active = None
        if current.done:
            _say(current.summary())


@contextmanager
def step(description: str, key: str | None = None) -> Iterator[Update]:
    """One long step; ``key`` names it in the running plan (its share is shown), if there is one."""
    start = time.monotonic()
    current = _active
    if current is not None and key is not None:
        description = current.label(key, description)
    try:
        if current is not None and current.live is not None:
            live = current.live
            task = live.add_task(description, total=None, line="")
            yield lambda line: live.update(task, line=line.strip()[:80])
            live.update(task, line=f"done ({time.monotonic() - start:.1f}s)")
            live.stop_task(task)
        elif current is None and sys.stderr.isatty():
            from rich.console import Console

            console = Console(stderr=True)
            with console.status(description) as status:

                def update(line: str) -> None:
                    elapsed = time.monotonic() - start
                    status.update(f"{description} [{elapsed:4.0f}s] [dim]{line.strip()[:80]}[/dim]")

                yield update
            console.print(f"[green]✓[/green] {description} ({time.monotonic() - start:.1f}s)")
        else:
            _say(f"{description} ...")
            yield lambda line: None
            _say(f"{description} done ({time.monotonic() - start:.1f}s)")
    finally:
        if current is not None and key is not None:
            with current.lock:
                current.done[key] = time.monotonic() - start
