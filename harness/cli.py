"""``armstack images build|list|prune|snapshots`` and ``armstack chaos``: the harness's part of ``armstack``."""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
from pathlib import Path

from harness.errors import HarnessError

KINDS = ("python", "debian", "engine", "runtime")


def images_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="armstack images", description="offline base images for emulated devices")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse cached) base images")
    build.add_argument("--arch", default="arm64", help="comma list of arm64, armv7, amd64 (default arm64)")
    build.add_argument("--kind", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    sub.add_parser("list", help="list the base images on this engine")
    prune = sub.add_parser("prune", help="remove the cached root filesystems, dependency trees and kit images "
                                         "this version of armstack does not use")
    prune.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    snaps = sub.add_parser("snapshots", help="list device card templates and snapshots (or remove them)")
    snaps.add_argument("--prune", nargs="*", metavar="NAME", default=None,
                       help="remove the named snapshots; with no name, every one (a running session's "
                            "reset points excepted)")
    args = parser.parse_args(argv)
    if args.command == "snapshots":
        return snapshots_main(args.prune)
    if args.command == "prune":
        return prune_main(args.dry_run)

    from harness import images

    try:
        if args.command == "list":
            rows = images.list_images()
            if not rows:
                print("no armstack images yet: run `armstack images build`")
            for r in rows:
                print(f"{r['tag']:55} {r['kind']:8} {r['arch']:10} {r['size']:>8}  {r['created']}")
            return 0
        kinds = [k.strip() for k in args.kind.split(",") if k.strip()]
        unknown = set(kinds) - set(KINDS)
        if unknown:
            parser.error(f"unknown kind(s) {', '.join(sorted(unknown))}; choose from {', '.join(KINDS)}")
        from harness.arch import parse_arches

        for tag in images.prepare(parse_arches(args.arch), kinds).values():
            print(tag)
        return 0
    except HarnessError as e:
        print(f"armstack images: {e}", file=sys.stderr)
        return 1


def prune_main(dry_run: bool) -> int:
    import docker.errors

    from harness.prune import prune

    try:
        done = prune(dry_run=dry_run)
    except (HarnessError, docker.errors.DockerException) as e:
        print(f"armstack images prune: {e}", file=sys.stderr)
        return 1
    print(done.summary(dry_run))
    return 0


def chaos_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="armstack chaos",
        description="a seeded random schedule of faults against a ledger stack on an emulated device; "
                    "checks that no acknowledged record is lost and the stack converges after every fault")
    parser.add_argument("--arch", default="arm64", help="arm64 or armv7 (default arm64)")
    parser.add_argument("--stack", default="stacks/ledger",
                        help="a stack with a 'ledger' service (default stacks/ledger)")
    parser.add_argument("--seed", type=int, default=None, help="the schedule's seed (default: drawn and printed)")
    parser.add_argument("--faults", type=int, default=20, help="how many faults (default 20)")
    parser.add_argument("--minutes", type=float, default=None, help="stop after this many minutes instead")
    parser.add_argument("--only", default="", help="comma list of fault kinds to draw from (default: all)")
    parser.add_argument("--out", default="reports/chaos", help="events.json, junit.xml, timeline.png go here")
    args = parser.parse_args(argv)
    if not Path(args.stack, "compose.yaml").is_file():
        parser.error(f"--stack {args.stack}: no compose.yaml there "
                     "(the ledger stack is stacks/ledger in the source tree)")
    if args.faults < 1 or (args.minutes is not None and args.minutes <= 0):
        parser.error("--faults and --minutes must be positive")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())

    from harness.chaos import soak
    from harness.device import EmulatedDevice

    # A soak is stopped by Ctrl-C or a TERM (a CI job's timeout): both unwind through the device's
    # `with`, so its containers and card go with it. SIGINT is restored: a shell starts a
    # background job with it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    print(f"chaos soak: seed {seed} (run it again with --seed {seed})", flush=True)
    try:
        with EmulatedDevice(args.arch) as device:
            result = soak(device, args.stack, seed=seed, faults=args.faults, only=only,
                          minutes=args.minutes, progress=lambda line: print(line, flush=True))
        paths = result.write(Path(args.out))
    except (HarnessError, ValueError) as e:
        print(f"armstack chaos: {e}", file=sys.stderr)
        return 1
    print(result.summary())
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0 if result.ok else 1


def snapshots_main(prune: list[str] | None) -> int:
    from harness import cardstore, snapshots

    try:
        store = cardstore.open_store()
    except HarnessError as e:
        print(f"armstack images snapshots: {e}", file=sys.stderr)
        return 1
    if store is None:
        print("no card store: it needs root and ARMSTACK_CARD_STORE not off", file=sys.stderr)
        return 1
    rows = snapshots.list_snapshots(store)
    if prune is not None:
        unknown = set(prune) - {m.name for m, _ in rows}
        if unknown:
            print(f"armstack images snapshots: no snapshot named {', '.join(sorted(unknown))}", file=sys.stderr)
            return 1
        for name in snapshots.prunable((m for m, _ in rows), prune):
            store.remove_snapshot(name)
            print(f"removed {name}")
        return 0
    if not rows:
        print(f"no snapshots in {store.snapshots}")
    for meta, used in rows:
        stack = meta.project or "-"
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(meta.created))
        print(f"{meta.name:45} {meta.kind:9} {meta.arch:6} {meta.disk:>5} {stack:15} {used / 1e6:7.0f} MB  {created}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["chaos"]:
        sys.exit(chaos_main(sys.argv[2:]))
    sys.exit(images_main(sys.argv[1:]))
