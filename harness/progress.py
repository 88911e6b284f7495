"""Progress for long steps (debootstrap, image builds, loading images into a device).

On a terminal a live spinner shows the step, its elapsed time and the latest output line;
elsewhere (CI logs) one line when a step starts and one when it ends, with its duration.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Update = Callable[[str], None]


@contextmanager
def step(description: str) -> Iterator[Update]:
    start = time.monotonic()
    if sys.stderr.isatty():
        from rich.console import Console

        console = Console(stderr=True)
        with console.status(description) as status:

            def update(line: str) -> None:
                elapsed = time.monotonic() - start
                status.update(f"{description} [{elapsed:4.0f}s] [dim]{line.strip()[:80]}[/dim]")

            yield update
        console.print(f"[green]✓[/green] {description} ({time.monotonic() - start:.1f}s)")
    else:
        print(f"armstack: {description} ...", file=sys.stderr, flush=True)
        yield lambda line: None
        print(f"armstack: {description} done ({time.monotonic() - start:.1f}s)", file=sys.stderr, flush=True)
