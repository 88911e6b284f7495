"""Disk benchmark on one emulated device: watermark recovery time and peak usage over a soak.

``run(device, quick=False) -> dict``:

* **recovery**: the stack owns three stale releases (100 MB each); a foreign file pushes the
  card just past the high watermark; measured is the time until the runtime has evicted the
  card back under the low watermark (it never touches the foreign file).
* **soak**: N updates (20, or 4 with ``quick``) of a service whose image carries 100 MB of
  fresh random data each time; measured is the peak card usage sampled while they run, and
  whether the running release was ever missing.

Figures are printed and returned; ``python -m bench`` collects them.
"""

from __future__ import annotations

import io
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

IMAGE_MB = 100
PROJECT = "diskbench"
POLL = 0.5


def write_stack(directory: Path, version: int, *, image_mb: int = IMAGE_MB) -> Path:
    """A one-service stack whose image holds ``image_mb`` MB of random data unique to ``version``."""
    app = directory / "app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "Dockerfile").write_text(textwrap.dedent(f"""\
        FROM debian:bookworm-slim
        RUN echo {version} > /version && head -c {image_mb}M /dev/urandom > /big
        CMD ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        """))
    (directory / "compose.yaml").write_text(textwrap.dedent(f"""\
        name: {PROJECT}
        services:
          app:
            build: ./app
            stop_grace_period: 1s
        """))
    return directory


def stale_release(device: Any, n: int, *, mb: int = IMAGE_MB) -> str:
    """An untagged image that looks like an earlier release of service ``app`` (the stack's)."""
    f = io.BytesIO(f"FROM debian:bookworm-slim\nRUN echo stale {n} {time.time()} && head -c {mb}M /dev/urandom > /big\n"
                   .encode())
    img, _ = device.engine.images.build(fileobj=f, rm=True, labels={
        "io.armstack.stack": PROJECT, "io.armstack.service": "app", "io.armstack.test": "1"})
    return str(img.id)


def running_version(device: Any) -> str | None:
    c = device.find_container("app")
    if c is None:
        return None
    # Exec in the container just found: looking it up again could find none mid-update.
    code, out = c.exec_run(["cat", "/version"])
    return out.decode(errors="replace").strip() if code == 0 else None


class Sampler:
    """Samples the card's usage (percent) in the background; ``peak`` is the highest seen."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.peak = 0.0
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                p = self.device.disk_usage().percent
                self.samples.append((time.monotonic(), p))
                self.peak = max(self.peak, p)
            except Exception:  # noqa: BLE001 - a sample lost during an engine hiccup is no failure
                pass
            self._stop.wait(POLL)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def recovery(device: Any, workdir: Path, *, high: float = 85.0, low: float = 80.0) -> dict[str, Any]:
    """Seconds from crossing the high watermark until the card is back under the low one."""
    for n in range(3):
        stale_release(device, n)
    device.fill_disk(high + 3)
    t0 = time.monotonic()
    crossed = device.disk_usage().percent
    deadline = t0 + device.timeout(120)
    now_pct = crossed
    while time.monotonic() < deadline:
        now_pct = device.disk_usage().percent
        if now_pct <= low:
            break
        time.sleep(POLL)
    seconds = time.monotonic() - t0
    device.free_disk()
    return {"crossed_percent": round(crossed, 1), "after_percent": round(now_pct, 1),
            "recovered": now_pct <= low, "seconds": round(seconds, 2)}


def soak(device: Any, workdir: Path, updates: int, *, high: float = 85.0) -> dict[str, Any]:
    """Apply ``updates`` new big images one after another; peak usage and release continuity."""
    gaps = 0
    times: list[float] = []
    with Sampler(device) as sampler:
        for v in range(2, updates + 2):
            write_stack(workdir, v)
            t = time.monotonic()
            device.deploy(workdir)
            times.append(time.monotonic() - t)
            if running_version(device) != str(v):
                gaps += 1
    return {"updates": updates, "peak_percent": round(sampler.peak, 1), "high_percent": high,
            "stayed_under_high": sampler.peak <= high, "wrong_release_after_update": gaps,
            "seconds_per_update": round(sum(times) / max(1, len(times)), 1),
            "final_percent": round(device.disk_usage().percent, 1)}


def run(device: Any, quick: bool = False) -> dict[str, Any]:
    """Both measurements on one started device (the stack is deployed here)."""
    with tempfile.TemporaryDirectory(prefix="armstack-bench-disk-") as tmp:
        workdir = Path(tmp)
        write_stack(workdir, 1)
        device.deploy(workdir)
        device.wait_until_running("app", timeout=120)
        rec = recovery(device, workdir)
        print(f"disk: watermark recovery {rec['seconds']:.1f} s ({rec['crossed_percent']}% -> "
              f"{rec['after_percent']}%)")
        n = 4 if quick else 20
        s = soak(device, workdir, n)
        print(f"disk: {n}-update soak peak {s['peak_percent']}% (high {s['high_percent']}%), "
              f"{s['seconds_per_update']} s per update, final {s['final_percent']}%")
    return {"recovery": rec, "soak": s, "quick": quick}


if __name__ == "__main__":  # pragma: no cover
    import json
    import sys

    from harness.device import EmulatedDevice

    with EmulatedDevice(disk="1500M") as dev:
        print(json.dumps(run(dev, quick="--quick" in sys.argv), indent=2))
