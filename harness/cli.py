"""``armstack images build|list``: the harness's part of the ``armstack`` command."""

from __future__ import annotations

import argparse
import sys

from harness.errors import HarnessError

KINDS = ("python", "debian", "engine", "runtime")


def images_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="armstack images", description="offline base images for emulated devices")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build (or reuse cached) base images")
    build.add_argument("--arch", default="arm64", help="comma list of arm64, armv7, amd64 (default arm64)")
    build.add_argument("--kind", default=",".join(KINDS), help=f"comma list of {', '.join(KINDS)}")
    sub.add_parser("list", help="list the base images on this engine")
    args = parser.parse_args(argv)

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


if __name__ == "__main__":
    sys.exit(images_main(sys.argv[1:]))
