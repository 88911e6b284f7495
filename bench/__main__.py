"""``python -m bench [--quick] [--only a,b]``: run the benchmarks, write bench/results/."""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from typing import Any

from bench.common import Result, device, write

# name -> SD card size of the device it runs on (None: no device). Both sides of one
# comparison run on the same device; each benchmark gets a fresh one.
BENCHES: dict[str, str | None] = {
    "planner": None, "recovery": "2G", "footprint": "2G", "updates": "2G", "disk": "1500M", "device_start": None,
    "vs_compose": "2G", "push": None, "device_tests": None, "card": None,
    "cold_setup": None,
}
# Left out of --quick: they build stacks from nothing (several minutes each under emulation).
NOT_QUICK = {"vs_compose", "cold_setup"}
BUILDS = {"updates", "vs_compose"}
# Benchmarks without a device of their own that take --arch.
ARCH_BENCHES = {"device_start", "device_tests", "cold_setup"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no cold builds: minutes")
    parser.add_argument("--all", action="store_true", help="everything, cold device start included")
    parser.add_argument("--only", default="", help="comma list of: " + ", ".join(BENCHES))
    parser.add_argument("--arch", default="arm64")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so devices are removed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    wanted = [b for b in (args.only.split(",") if args.only else BENCHES) if b]
    if args.quick and not args.only:
        wanted = [b for b in wanted if b not in NOT_QUICK]
        print(f"--quick leaves out {', '.join(sorted(NOT_QUICK))} (cold builds): make bench runs them", flush=True)
    unknown = set(wanted) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results: list[Result] = []
    # What an interrupted earlier run left (its owner process is gone) is removed first.
    import docker

    from harness.device import sweep_card_directories
    from harness.session import sweep

    sweep(docker.from_env())
    sweep_card_directories()

    def collect(name: str, out: Any) -> None:
        if isinstance(out, Result):
            results.append(out)
        elif isinstance(out, dict):  # benchmarks that return plain figures (one level of nesting)
            r = Result(name)
            flat = {f"{k}.{k2}" if isinstance(v, dict) else k: v2
                    for k, v in out.items() for k2, v2 in (v.items() if isinstance(v, dict) else [(k, v)])}
            for k, v in flat.items():
                if isinstance(v, int | float | str) and not isinstance(v, bool):
                    r.row(k, float(v) if isinstance(v, int) else v)
            results.append(r)

    for name in [b for b in wanted if not BENCHES[b]]:
        print(f"== {name}", flush=True)
        module = importlib.import_module(f"bench.{name}")
        collect(name, module.run(quick=args.quick) if name not in ARCH_BENCHES else module.run(
            quick=args.quick and not args.all, arch=args.arch))
    device_benches = [b for b in wanted if BENCHES[b]]
    for name in device_benches:
        # Each gets a fresh device: one benchmark's crashes or full card must not skew another's.
        print(f"== {name}", flush=True)
        try:
            module = importlib.import_module(f"bench.{name}")
        except ImportError as e:
            print(f"   skipped: {e}", flush=True)
            continue
        # Benchmarks of builds build from nothing: no images from the host's build cache.
        with device(arch=args.arch, disk=BENCHES[name] or "2G", build_cache=name not in BUILDS) as d:
            collect(name, module.run(d, quick=args.quick))
    out = write(results)
    print(f"results: {out}/results.md, results.json and plots", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
