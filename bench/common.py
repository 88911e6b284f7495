"""Shared plumbing of the benchmarks: timing, the device they run on, and result files.

Every benchmark measures both sides in one run on the same machine and reports ratios:
absolute times on shared machines are noise, ratios within one run are not.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


@dataclass
class Result:
    """One benchmark's figures: ``rows`` become table lines, ``series`` become plots."""

    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def row(self, metric: str, value: float | str, unit: str = "", **extra: Any) -> None:
        self.rows.append({"metric": metric, "value": value, "unit": unit, **extra})
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        print(f"  {self.name:12} {metric:55} {shown:>10} {unit}", flush=True)


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": float(len(values))}


@contextmanager
def device(arch: str = "arm64", disk: str = "2G", **kw: Any) -> Iterator[Any]:
    from harness.device import EmulatedDevice

    with EmulatedDevice(arch=arch, disk=disk, **kw) as d:
        yield d


def write(results: list[Result]) -> Path:
    """results.json, results.md (the table the README shows) and one PNG per plotted series.

    Benchmarks run separately (``--only``) add to what is there: a run replaces only the
    benchmarks it ran.
    """
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "results.json"
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    data.update({r.name: {"rows": r.rows, "series": r.series, "notes": r.notes} for r in results})
    data["_meta"] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    path.write_text(json.dumps(data, indent=2) + "\n")
    merged = [Result(name, d["rows"], d["series"], d["notes"]) for name, d in data.items() if name != "_meta"]
    lines = ["| benchmark | metric | value | unit |", "|---|---|---:|---|"]
    for r in merged:
        for row in r.rows:
            v = row["value"]
            shown = f"{v:.3f}" if isinstance(v, float) else v
            lines.append(f"| {r.name} | {row['metric']} | {shown} | {row['unit']} |")
        lines += [f"| {r.name} | note: {n} | | |" for n in r.notes]
    (RESULTS / "results.md").write_text("\n".join(lines) + "\n")
    _plot(results)
    return RESULTS


def _plot(results: list[Result]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    for r in results:
        if not r.series:
            continue
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = list(r.series)
        values = [statistics.median(v) if v else 0.0 for v in r.series.values()]
        # One colour per side ("cold boot, runtime" -> runtime), the runtime's always the same.
        palette: dict[str, str] = {"runtime": "#2a9d8f"}
        spare = iter(["#e9c46a", "#e76f51", "#264653", "#8d99ae"] * len(names))
        colors = [palette.setdefault(n.rsplit(", ", 1)[-1], next(spare)) for n in names]
        bars = ax.barh(names, values, color=colors)
        ax.bar_label(bars, fmt="%.2f s", padding=3)
        log = max(values) / max(min(values), 1e-3) > 50
        ax.set_xscale("log" if log else "linear")
        ax.set_xlim(right=max(values) * (3 if log else 1.15))   # room for the longest bar's label
        ax.set_xlabel("seconds (median, lower is better)")
        ax.set_title(r.name)
        fig.tight_layout()
        fig.savefig(RESULTS / f"{r.name}.png", dpi=110)
        plt.close(fig)


COLD_PREFIX = "armstack-bench-cold"


@contextmanager
def cold_cache() -> Iterator[None]:
    """Nothing made before can be reused inside: a fresh cache directory and image names of its own
    (ARMSTACK_CACHE, ARMSTACK_IMAGE_PREFIX); both, and the images made under those names, go after."""
    import os
    import shutil
    import tempfile

    import docker

    cache = tempfile.mkdtemp(prefix="armstack-cold-", dir="/var/tmp")   # on disk: a /tmp may be a small tmpfs
    saved = {k: os.environ.get(k) for k in ("ARMSTACK_CACHE", "ARMSTACK_IMAGE_PREFIX")}
    os.environ.update(ARMSTACK_CACHE=cache, ARMSTACK_IMAGE_PREFIX=COLD_PREFIX)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        from harness.cardstore import unmount_store

        unmount_store(Path(cache))
        shutil.rmtree(cache, ignore_errors=True)
        host = docker.from_env()
        for img in host.images.list():
            if any(t.startswith(f"{COLD_PREFIX}/") for t in img.tags):
                host.images.remove(img.id, force=True)
