"""``python -m bench.codeshape [--top N] [--json] [--root DIR] [--names NAME]``: the largest classes, read by AST.

For every class in ``runtime/`` and ``harness/`` it reports

* ``lines``: from the ``class`` line (decorators included) to the class's last line;
* ``attrs``: distinct attributes its methods assign on ``self`` (``self.x = ...``,
  ``self.x: T = ...``, ``self.x += ...``, tuple targets; class-level names do not count);
* ``methods``: functions defined directly in the class body;
* ``fan-out``: distinct project modules (``runtime.*``, ``harness.*``) its module imports,
  at the top or inside functions; ``from runtime import backoff`` counts ``runtime.backoff``,
  and each ``runtime.compose.*`` module counts on its own.

``--names NAME`` instead lists the modules whose code names ``NAME``: a variable, parameter,
keyword, attribute or string (docstrings and comments do not count) -- where a decision about
``NAME`` is spelled out, so how many files a change to it reaches.

Nothing is imported or run: the figures come from the source text alone, so they can be taken
on any checkout (``--root``) to compare two versions.

Reach of a compose key with a selector (issue 11, "one home per decision")
---------------------------------------------------------------------------
A key such as ``profiles`` has its service-level rules and also a selector: a CLI flag
(``--profile``), a variable (``COMPOSE_PROFILES``) and a harness parameter. The files adding it
touches, for the key's behaviour to reach every path (CLI -> supervisor -> state -> harness):

before (commit 94146d6), 15: ``runtime/compose/<key>.py``, ``loader.py`` (the names threaded
through ``_load``/``_read_stack``), ``merge.py`` (its merge identity), ``compat.py`` (a
hand-written row), ``source.py`` (field, JSON, validation, ``cli_args``, ``pinned``),
``runtime/cli.py`` (option, default, joining, ``_source``, help line), ``runtime/supervisor.py``,
``runtime/releases.py`` and ``runtime/rollback.py`` (the release kept files and profiles apart),
``runtime/push.py`` and ``runtime/pushplan.py`` (the target's apply command), and
``harness/device.py``, ``harness/protocol.py``, ``harness/snapshots.py``, ``harness/buildcache.py``
(each carried ``profiles`` beside the path). ``--names profiles`` on that checkout: 16 modules
(those, and ``runtime/control.py``, which reads apply requests of older CLIs).

now, at most 4: ``runtime/compose/<key>.py`` (its rules, variable and resolution),
``runtime/compose/source.py`` (the field and its ``SELECTIONS`` entry: flag, variable, name
pattern, resolution), ``runtime/compose/loader.py`` (one ``_SELECT`` entry) and, only when compose
merges the key by identity rather than appending, ``runtime/compose/merge.py``. The CLI's options,
defaults and help, the JSON form, the compat table (``loader.RESOLVED_FIRST``), the supervisor,
apply requests, push, the kept release and the harness (``deploy(StackSource)``, snapshots, build
cache) carry the source whole. ``--names profiles`` now: 9 modules -- those 4 (``merge.py`` counted),
the readers of shapes written before the source was carried whole (``runtime/control.py``,
``runtime/rollback.py``, ``harness/snapshots.py``) and the ``profiles=`` conveniences kept for
callers (``loader.load_stack``/``load_text``, ``harness/device.py`` and ``harness/protocol.py``'s
``deploy(path, profiles=...)``), none of which a new key needs.
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


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the string nodes that are docstrings (they describe, they decide nothing)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body
                and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)):
            out.add(id(node.body[0].value))
    return out


def names(source: str, name: str) -> bool:
    """Whether the code of a module names ``name``: as a variable, parameter, keyword, attribute
    or a string that is not a docstring."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    for node in ast.walk(tree):
        if ((isinstance(node, ast.Name) and node.id == name)
                or (isinstance(node, ast.Attribute) and node.attr == name)
                or (isinstance(node, ast.arg | ast.keyword) and node.arg == name)
                or (isinstance(node, ast.Constant) and node.value == name and id(node) not in docs)):
            return True
    return False


def naming(root: Path, name: str, packages: tuple[str, ...] = PACKAGES) -> list[str]:
    """The modules under ``root``'s packages whose code names ``name``, by path."""
    files = sorted(p for pkg in packages for p in (root / pkg).rglob("*.py"))
    return [p.relative_to(root).as_posix() for p in files if names(p.read_text(encoding="utf-8"), name)]


def table(shapes: list[ClassShape]) -> str:
    head = f"{'class':28} {'module':32} {'lines':>6} {'attrs':>6} {'methods':>8} {'fan-out':>8}"
    rows = [f"{s.name:28} {s.path:32} {s.lines:6d} {s.attrs:6d} {s.methods:8d} {s.fan_out:8d}" for s in shapes]
    return "\n".join([head, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.codeshape", description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many classes (default 10)")
    parser.add_argument("--json", action="store_true", help="JSON instead of a table")
    parser.add_argument("--root", type=Path, default=REPO, help="the checkout to read (default: this one)")
    parser.add_argument("--names", metavar="NAME", help="list the modules whose code names NAME instead")
    args = parser.parse_args(argv)
    missing = [pkg for pkg in PACKAGES if not (args.root / pkg).is_dir()]
    if missing:
        parser.error(f"{args.root} has no {', '.join(missing)} directory; --root must name a checkout")
    if args.names:
        found = naming(args.root, args.names)
        print(json.dumps(found, indent=2) if args.json else "\n".join([f"{len(found)} modules name {args.names}:",
                                                                     *found]))
        return 0
    shapes = scan(args.root)[: max(args.top, 0)]
    print(json.dumps([asdict(s) for s in shapes], indent=2) if args.json else table(shapes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
