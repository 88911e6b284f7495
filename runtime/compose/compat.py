"""The compose compatibility table, built from the loader's own tables so it cannot drift.

``python -m runtime.compose.compat`` prints it as markdown; the README holds that output between
``<!-- compat:start -->`` and ``<!-- compat:end -->``, and a unit test fails when they differ.
"""

from __future__ import annotations

from runtime.compose import loader, resources, service
from runtime.compose.fileobjects import SECTIONS

HONOURED = "honoured"
WARNING = "warning"

START, END = "<!-- compat:start -->", "<!-- compat:end -->"


def rows() -> list[tuple[str, str, str, str]]:
    """(section, key, verdict, note) for every key the loader knows."""
    out: list[tuple[str, str, str, str]] = []
    for key in loader._TOP_LEVEL:
        out.append(("top level", key, HONOURED, ""))
    for key in loader._TOP_LEVEL_IGNORED:
        out.append(("top level", key, WARNING, "not supported: ignored"))
    for key in sorted(service._READERS):
        out.append(("service", key, HONOURED, ""))
    for key, module in loader.RESOLVED_FIRST.items():
        out.append(("service", key, HONOURED, f"resolved before the service is read ({module})"))
    for key, why in sorted(service._UNSUPPORTED.items()):
        out.append(("service", key, WARNING, why))
    for key in sorted(service._IGNORED):
        out.append(("service", key, WARNING, "not supported: ignored"))
    for key in service._BUILD_KEYS:
        out.append(("service build", key, HONOURED, ""))
    for key in sorted(service._BUILD_IGNORED):
        out.append(("service build", key, WARNING, "the engine's classic builder has no such setting"))
    for key, why in sorted(service._SWARM_ONLY.items()):
        out.append(("service deploy", key, WARNING, why))
    for section in ("networks", "volumes"):
        for key in sorted(resources._KNOWN[section]):
            out.append((section, key, HONOURED, "external only by name: a missing one is an error"
                        if key == "external" else ""))
        for key in sorted(resources._IGNORED[section]):
            out.append((section, key, WARNING, "not supported: ignored"))
    for section in SECTIONS:
        for key in ("file", "environment", "content"):
            out.append((section, key, HONOURED, ""))
        out.append((section, "external", "error", "needs a swarm"))
    return out


def markdown() -> str:
    """One row per section and verdict; warnings and errors carry their reason."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for section, key, verdict, note in rows():
        grouped.setdefault((section, verdict), []).append(f"`{key}`" + (f" ({note})" if note else ""))
    lines = [START, "| section | verdict | keys |", "|---|---|---|"]
    lines += [f"| {section} | {verdict} | {', '.join(keys)} |" for (section, verdict), keys in grouped.items()]
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown(), end="")
