"""The lossy SD card's cost: the same writes and the same build on a device whose card has the
volatile write cache (cardfs, the default) and on one whose card is the plain image file.

``run(quick=False) -> Result``: two devices, up together and taking turns round by round, each doing

* **stream**: ``dd`` of 256 MiB (64 with ``quick``) to the card, then ``fsync`` — fio's sequential write;
* **small files**: 500 files of 8 KiB, each written and fsynced (a database's commits);
* **build**: the minimal stack's server image built from nothing (``nocache``) by the device's engine.

Rows are each side's seconds (median of the rounds) and the cache / plain ratio; the goal is ≤ 1.5.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from contextlib import ExitStack
from functools import partial
from typing import Any

from bench.common import REPO, Result, device, timed

GOAL = 1.5


def _stream(d: Any, mb: int) -> None:
    d.shell(f"dd if=/dev/zero of=/data/bench-stream bs=1M count={mb} conv=fsync 2>/dev/null; rm -f /data/bench-stream")


def _small(d: Any) -> None:
    d.shell("mkdir -p /data/bench-small && i=0; while [ $i -lt 500 ]; do "
            "dd if=/dev/zero of=/data/bench-small/f$i bs=8k count=1 conv=fsync 2>/dev/null; i=$((i+1)); done; "
            "rm -rf /data/bench-small")


def _build(d: Any) -> None:
    _, logs = d.engine.images.build(path=str(REPO / "stacks" / "minimal" / "server"), nocache=True, rm=True,
                                    tag="bench-card:latest")
    for _ in logs:
        pass


def run(quick: bool = False) -> Result:
    r = Result("card")
    rounds = 1 if quick else 5
    mb = 64 if quick else 256
    cases: dict[str, Callable[[Any], None]] = {
        "stream write + fsync": lambda d: _stream(d, mb), "500 small files, each fsynced": _small,
        "build of the minimal server image": _build}
    samples: dict[str, dict[str, list[float]]] = {name: {"plain": [], "cache": []} for name in cases}
    # Both devices are up together and the sides take turns, round by round: on a shared machine
    # the load drifts over minutes, and one side measured after the other would take its drift.
    with ExitStack() as stack:
        devices = {side: stack.enter_context(device(disk="2G", card_cache=cache, preload=("python",)))
                   for side, cache in (("plain", False), ("cache", True))}
        for d in devices.values():
            _build(d)   # warm: base image layers and the engine's first-build costs out of the timing
        for _ in range(rounds):
            for name, fn in cases.items():
                for side, d in devices.items():
                    samples[name][side].append(timed(partial(fn, d)))
    seconds = {name: {side: statistics.median(v) for side, v in sides.items()} for name, sides in samples.items()}
    for name, sides in seconds.items():
        r.row(f"{name}, plain card", sides["plain"], "s")
        r.row(f"{name}, card with write cache", sides["cache"], "s")
        r.row(f"{name}: cache / plain", sides["cache"] / sides["plain"], "x")
    r.notes.append(f"goal: cache / plain <= {GOAL}; stream is {mb} MiB; {rounds} round(s), median")
    return r
