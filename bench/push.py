"""Benchmark: bytes ``armstack push`` sends for a one-line change in a stack with a 50 MB build context.

A stack with one built service whose context holds 50 MB of incompressible data plus a small
``app.py`` is pushed to an empty target (the whole release), then one line of ``app.py`` is
changed and the stack pushed again, ``rounds`` times. The target is a local directory
(``--to``): the bytes are the same as over ssh, where the ssh transport adds its own framing
and handshake. Reported, from the push's own counts:

- ``one_line_sent_bytes``: everything sent for the update — the receiver program on the command
  line, the change list and the compressed changed file;
- ``one_line_overhead_bytes``: that minus the changed file's size (goal ≤ 10 kB);
- ``context_vs_sent_factor``: the build context's bytes (what copying the context would send) /
  the update's bytes;
- ``one_line_push_seconds``: wall time of the update push (hashing the 50 MB context included).

Run alone with ``python -m bench.push [--quick]``.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Result, write
from runtime.compose.model import BuildSpec
from runtime.push import push, release_files
from runtime.pushplan import PushTarget

CONTEXT_BYTES = 50 << 20
GOAL_OVERHEAD = 10 * 1024
APP = "import time\n\nGREETING = 'v{n}'\n\nwhile True:\n    print(GREETING, flush=True)\n    time.sleep(60)\n"


def _stack(root: Path) -> None:
    app = root / "app"
    (app / "assets").mkdir(parents=True)
    (root / "compose.yaml").write_text("name: pushbench\nservices:\n  app:\n    build: ./app\n")
    (app / "Dockerfile").write_text("FROM python:3.11-slim-bookworm\nCOPY . /app\nCMD [\"python3\", \"/app/app.py\"]\n")
    (app / "app.py").write_text(APP.format(n=0))
    for i in range(50):   # incompressible, as images, models or vendored binaries are
        (app / "assets" / f"blob-{i:02}.bin").write_bytes(os.urandom(CONTEXT_BYTES // 50))


def _push(src: Path, board: Path) -> tuple[int, float, int]:
    """(bytes sent, seconds, bytes of changed file contents) of one push."""
    t0 = time.perf_counter()
    files = release_files(src, [("app", BuildSpec(context=str(src / "app")))], ["compose.yaml"])
    result = push(PushTarget("dir", str(board)), files, apply=None, out=io.StringIO())
    return result.sent_bytes, time.perf_counter() - t0, result.changes.content_bytes


def run(quick: bool = False) -> Result:
    rounds = 1 if quick else 3
    r = Result("push")
    with tempfile.TemporaryDirectory(prefix="armstack-bench-push-") as tmp:
        src, board = Path(tmp) / "src", Path(tmp) / "board" / "stack"
        board.parent.mkdir()
        _stack(src)
        context = sum(p.stat().st_size for p in (src / "app").rglob("*") if p.is_file())
        first, first_s, _ = _push(src, board)
        sent, seconds, overhead = [], [], []
        for n in range(1, rounds + 1):
            (src / "app" / "app.py").write_text(APP.format(n=n))   # one line changes
            b, s, changed = _push(src, board)
            sent.append(b)
            seconds.append(s)
            overhead.append(b - changed)
    r.row("context_bytes", float(context), "B")
    r.row("first_push_sent_bytes", float(first), "B")
    r.row("first_push_seconds", first_s, "s")
    r.row("one_line_sent_bytes", float(statistics.median(sent)), "B")
    r.row("one_line_overhead_bytes", float(max(overhead)), "B", goal=GOAL_OVERHEAD)
    r.row("context_vs_sent_factor", context / statistics.median(sent), "x")
    r.row("one_line_push_seconds", statistics.median(seconds), "s")
    r.notes.append(f"one-line change of app.py in a {context >> 20} MB context, pushed to a local directory "
                   f"{rounds}x; goal: overhead <= {GOAL_OVERHEAD} B beyond the changed file")
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    result = run(quick=args.quick)
    write([result])
    over = next(row["value"] for row in result.rows if row["metric"] == "one_line_overhead_bytes")
    return 0 if over <= GOAL_OVERHEAD else 1


if __name__ == "__main__":
    sys.exit(main())
