"""``armstack images build|list|snapshots``: the harness's part of the ``armstack`` command."""

from __future__ import annotations

import argparse
import sys
import time

from harness.errors import HarnessError

KINDS = ("python", "debian", "engine", "runtime")


def images_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="armstack images", description="offline base images for emulated devices")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse cached) base images")
    build.add_argument("--arch", default="arm64", help="comma list of arm64, armv7, amd64 (default arm64)")
    build.add_argument("--kind", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    sub.add_parser("list", help="list the base images on this engine")
    snaps = sub.add_parser("snapshots", help="list device card templates and snapshots (or remove them)")
    snaps.add_argument("--prune", nargs="*", metavar="NAME", default=None,
                       help="remove the named snapshots; with no name, every one (a running session's "
                            "reset points excepted)")
    args = parser.parse_args(argv)
    if args.command == "snapshots":
        return snapshots_main(args.prune)

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

        arches = parse_arches(args.arch)
        images.prefetch_rootfs(arches, kinds)
        for arch in arches:
            for kind in kinds:
                if kind == "engine":
                    tag = images.build_engine()
                elif kind == "runtime":
                    tag = images.build_runtime(arch)
                else:
                    tag = images.build_base(kind, arch)
                print(tag)
        return 0
    except HarnessError as e:
        print(f"armstack images: {e}", file=sys.stderr)
        return 1


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
    sys.exit(images_main(sys.argv[1:]))
