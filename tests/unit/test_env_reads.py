"""The environment is read in one place per half: runtime/settings.py and harness/settings.py.

Everything else takes a ``RuntimeSettings``/``HarnessSettings`` (or one of its fields), so a
variable is validated once and a test can hand in any environment it likes. A new
``os.environ``/``os.getenv`` elsewhere fails this test: read it in the settings module instead.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {"runtime/settings.py", "harness/settings.py"}
# Each entry: file -> why an environment access there is not a setting read.
ALLOWED = {
    # The loader's documented default for callers that give no environment (docker compose
    # interpolates with the process environment); the CLI and the supervisor always pass
    # RuntimeSettings.environ through the StackSource.
    "runtime/compose/loader.py": 1,
    # Not harness code: a hook that runs inside the device's runtime container (clock_jump, the
    # start gate), where the only way in is the environment the container starts with.
    "harness/assets/clock_sitecustomize.py": 2,
}


def environment_accesses(tree: ast.AST) -> list[int]:
    """Lines that touch ``os.environ``/``os.getenv``/``os.environb`` (also imported by name)."""
    names = ("environ", "environb", "getenv", "getenvb", "putenv", "unsetenv")
    lines = []
    for node in ast.walk(tree):
        by_attribute = (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                        and node.value.id == "os" and node.attr in names)
        by_import = (isinstance(node, ast.ImportFrom) and node.module == "os"
                     and any(a.name in names for a in node.names))
        if by_attribute or by_import:
            lines.append(node.lineno)
    return sorted(lines)


def scan() -> dict[str, list[int]]:
    found = {}
    for package in ("runtime", "harness"):
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            lines = environment_accesses(ast.parse(path.read_text(), rel))
            if lines and rel not in SETTINGS:
                found[rel] = lines
    return found


def test_the_environment_is_read_only_in_the_settings_modules() -> None:
    found = scan()
    unexpected = {f: lines for f, lines in found.items() if len(lines) > ALLOWED.get(f, 0)}
    assert not unexpected, (
        "os.environ read outside runtime/settings.py and harness/settings.py: "
        + ", ".join(f"{f} line(s) {lines}" for f, lines in unexpected.items())
        + "; add the variable to the settings and pass it in.")


def test_the_allow_list_has_no_stale_entries() -> None:
    found = scan()
    assert {f: n for f, n in ALLOWED.items() if len(found.get(f, [])) != n} == {}


def test_the_scan_sees_every_spelling() -> None:
    text = ("import os\nfrom os import getenv\na = os.environ['X']\nb = os.getenv('Y')\n"
            "c = os.environ.get('Z')\nd = 'os.environ'\n")
    assert environment_accesses(ast.parse(text)) == [2, 3, 4, 5]
