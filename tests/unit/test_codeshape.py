"""The class-size measurement (bench/codeshape.py) on plain source text."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from bench.codeshape import ClassShape, class_shapes, main, module_name, scan

KNOWN = frozenset({"runtime", "runtime.backoff", "runtime.errors", "runtime.compose", "runtime.compose.model",
                   "runtime.hub", "harness.device"})

SOURCE = textwrap.dedent('''\
    import os
    import runtime.errors
    from runtime import backoff as bo
    from runtime.compose.model import StackSpec, ServiceSpec
    from . import hub
    from .errors import ArmstackError


    @decorated
    class Hub:
        limit = 3
        note: str = "class-level names are not instance attributes"

        def __init__(self, n: int) -> None:
            self.n = n
            self.items: list[int] = []
            self.a, (self.b, other) = 1, (2, 3)

        def grow(this) -> None:
            this.n += 1
            this.items.append(1)      # a call, not an assignment
            other = this.n            # a read

        @staticmethod
        def helper(x: int) -> None:
            x.y = 1                   # not self: a parameter of a static method

        class Inner:
            def __init__(self) -> None:
                from harness.device import DeviceBase
                self.d = DeviceBase
    ''')


def test_a_class_is_measured_from_its_decorator_to_its_last_line() -> None:
    shapes = {s.name: s for s in class_shapes(SOURCE, "runtime/hub.py", KNOWN)}
    assert shapes["Hub"] == ClassShape("Hub", "runtime/hub.py", lines=23, attrs=4, methods=3, fan_out=4)
    # The nested class is measured on its own; the import inside a function counts for the module.
    assert shapes["Inner"] == ClassShape("Inner", "runtime/hub.py", lines=4, attrs=1, methods=1, fan_out=4)


def test_fan_out_counts_modules_not_the_packages_they_sit_in() -> None:
    import ast

    from bench.codeshape import imported_modules

    got = imported_modules(ast.parse(SOURCE), "runtime.hub", known=KNOWN)
    # `from . import hub` is this module itself; `os` is not the project's.
    assert got == {"runtime.errors", "runtime.backoff", "runtime.compose.model", "harness.device"}


def test_module_names() -> None:
    assert module_name("runtime/compose/model.py") == "runtime.compose.model"
    assert module_name("runtime/compose/__init__.py") == "runtime.compose"


def test_scan_reads_a_checkout_and_names_the_largest_first(tmp_path: Path) -> None:
    for pkg in ("runtime", "harness"):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "runtime" / "hub.py").write_text(SOURCE)
    (tmp_path / "harness" / "small.py").write_text("class Small:\n    pass\n")
    assert [s.name for s in scan(tmp_path)] == ["Hub", "Inner", "Small"]


def test_a_root_that_is_not_a_checkout_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--root", str(tmp_path)])
    assert exc.value.code == 2
    assert "has no runtime, harness directory" in capsys.readouterr().err


def test_names_finds_a_name_in_code_not_in_docstrings_or_comments(tmp_path: Path) -> None:
    from bench.codeshape import names, naming

    assert not names('"""profiles are described here."""\n# profiles\nx = 1\n', "profiles")
    for code in ("profiles = 1\n", "def f(profiles): pass\n", "f(profiles=1)\n", "a.profiles\n",
                 "d = {'profiles': 1}\n"):
        assert names(code, "profiles"), code
    assert not names("profiles_of = 1\nx = 'profiles are off'\n", "profiles")
    for pkg, text in (("runtime", "profiles = 1\n"), ("harness", "x = 1\n")):
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "m.py").write_text(text)
    assert naming(tmp_path, "profiles") == ["runtime/m.py"]
