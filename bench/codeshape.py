"""``python -m bench.codeshape [--top N] [--json] [--root DIR]``: the largest classes, read by AST.

For every class in ``runtime/`` and ``harness/`` it reports

* ``lines``: from the ``class`` line (decorators included) to the class's last line;
* ``attrs``: distinct attributes its methods assign on ``self`` (``self.x = ...``,
  ``self.x: T = ...``, ``self.x += ...``, tuple targets; class-level names do not count);
* ``methods``: functions defined directly in the class body;
* ``fan-out``: distinct project modules (``runtime.*``, ``harness.*``) its module imports,
  at the top or inside functions; ``from runtime import backoff`` counts ``runtime.backoff``,
  and each ``runtime.compose.*`` module counts on its own.

Nothing is imported or run: the figures come from the source text alone, so they can be taken
on any checkout (``--root``) to compare two versions.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

PACKAGES = ("runtime", "harness")
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ClassShape:
    name: str
    path: str          # relative to the root, e.g. runtime/supervisor.py
    lines: int
    attrs: int
    methods: int
    fan_out: int       # project modules the class's module imports


def module_name(path: str) -> str:
    """``runtime/compose/model.py`` -> ``runtime.compose.model`` (``__init__`` names the package)."""
    parts = list(Path(path).with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.Module, module: str, packages: tuple[str, ...] = PACKAGES,
                     known: frozenset[str] = frozenset()) -> set[str]:
    """Project modules ``tree`` imports. ``known`` (every module of the project) tells
    ``from runtime import backoff`` (a module) from ``from runtime.errors import X`` (a name)."""
    out: set[str] = set()
    package = module if module in known and any(k.startswith(module + ".") for k in known) else \
        module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against this module's package
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            out.update(subs)
            if len(subs) < len(node.names):   # some names are not modules: the base is imported for them
                out.add(base)
    return {m for m in out if m.split(".")[0] in packages and m != module}


def self_attributes(cls: ast.ClassDef) -> set[str]:
    """Attributes assigned on the first parameter of the class's own methods."""
    names: set[str] = set()
    for fn in cls.body:
        if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) or not fn.args.args:
            continue
        if any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod") for d in fn.decorator_list):
            continue   # no instance: the first parameter is a value or the class
        me = fn.args.args[0].arg
        for node in ast.walk(fn):
            targets: list[ast.expr] = []
            if isinstance(node, ast.Assign):
                targets = list(node.targets)
            elif isinstance(node, ast.AnnAssign | ast.AugAssign):
                targets = [node.target]
            for t in targets:
                for leaf in ast.walk(t):
                    if (isinstance(leaf, ast.Attribute) and isinstance(leaf.value, ast.Name)
                            and leaf.value.id == me and isinstance(leaf.ctx, ast.Store)):
                        names.add(leaf.attr)
    return names


def class_shapes(source: str, path: str, known: frozenset[str] = frozenset(),
                 packages: tuple[str, ...] = PACKAGES) -> list[ClassShape]:
    """Every class of one module (nested classes included), from its source text."""
    tree = ast.parse(source, filename=path)
    fan_out = len(imported_modules(tree, module_name(path), packages, known))
    out: list[ClassShape] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            methods = sum(isinstance(b, ast.FunctionDef | ast.AsyncFunctionDef) for b in node.body)
            out.append(ClassShape(node.name, path, (node.end_lineno or node.lineno) - first + 1,
                                  len(self_attributes(node)), methods, fan_out))
    return out


def scan(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[ClassShape]:
    """Every class under ``root``'s packages, largest first."""
    files = sorted(p for pkg in packages for p in (root / pkg).rglob("*.py"))
    rel = [p.relative_to(root).as_posix() for p in files]
    known = frozenset(module_name(r) for r in rel)
    shapes = [s for p, r in zip(files, rel, strict=True)
              for s in class_shapes(p.read_text(encoding="utf-8"), r, known, packages)]
    return sorted(shapes, key=lambda s: (-s.lines, s.path, s.name))


def table(shapes: list[ClassShape]) -> str:
    head = f"{'class':28} {'module':32} {'lines':>6} {'attrs':>6} {'methods':>8} {'fan-out':>8}"
    rows = [f"{s.name:28} {s.path:32} {s.lines:6d} {s.attrs:6d} {s.methods:8d} {s.fan_out:8d}" for s in shapes]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codeshape", description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many classes (default 10)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to read (default: this one)")
    args = parser.parse_args(argv)
    missing = [pkg for pkg in PACKAGES if not (args.root / pkg).is_dir()]
    if missing:
        parser.error(f"{args.root} has no {', '.join(missing)} directory; --root must name a checkout")
    shapes = scan(args.root)[: max(args.top, 0)]
    print(json.dumps([asdict(s) for s in shapes], indent=2) if args.json else table(shapes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
