"""Print, per corpus file, the fields where the runtime differs from docker-compose 1.29.

    python -m tests.integration.parity_report                 # every file
    python -m tests.integration.parity_report dns memory -v   # some files, with values and tool output

Needs the native engine, ``docker-compose`` and the test base image (the integration tier builds
it). Exit status 1 when some file differs. The last lines are the parity figure and the XFAIL table
(file -> differing fields) as the test module wants it.
"""

from __future__ import annotations

import argparse
import sys

from tests.integration.composeparity import SideFailed, compare, corpus, fields, image_env, reason, tagged_images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.parity_report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="corpus files (directory names); default: all")
    parser.add_argument("-v", "--verbose", action="store_true", help="values of each field and tool output")
    args = parser.parse_args(argv)
    cases = [c for c in corpus() if not args.names or c.name in args.names]
    unknown = set(args.names) - {c.name for c in cases}
    if unknown:
        parser.error(f"not in the corpus: {', '.join(sorted(unknown))}")
    table: dict[str, str] = {}
    total = 0.0
    with tagged_images(cases):
        images = image_env()
        for case in cases:
            try:
                result = compare(case, images)
            except SideFailed as exc:
                print(f"ERROR {case.name}: {exc}")
                table[case.name] = "a tool failed"
                continue
            total += result.seconds
            status = "match" if not result.differences else f"{len(result.differences)} difference(s)"
            print(f"{case.name}: {status} ({result.seconds:.1f}s) - {case.header()}")
            for line in result.differences if args.verbose else fields(result.differences):
                print(f"    {line}")
            if args.verbose:
                print(f"    --- compose\n{result.compose.log}\n    --- runtime\n{result.runtime.log}")
            if result.differences:
                table[case.name] = reason(result.differences)
    print(f"\nparity: {len(cases) - len(table)}/{len(cases)} corpus files match ({total:.0f}s)")
    if table:
        print("\nXFAIL = {")
        for name, why in table.items():
            print(f"    {name!r}: {why!r},")
        print("}")
    return 1 if table else 0


if __name__ == "__main__":
    sys.exit(main())
