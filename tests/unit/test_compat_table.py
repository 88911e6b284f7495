"""The README's compatibility table is the one the loader's tables generate."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.compose import compat, service

pytestmark = pytest.mark.unit
README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readme_holds_the_generated_table() -> None:
    text = README.read_text()
    start, end = text.index(compat.START), text.index(compat.END) + len(compat.END)
    assert text[start:end] + "\n" == compat.markdown(), "run `python -m runtime.compose.compat` into the README"


def test_every_service_key_the_loader_reads_is_listed_as_honoured() -> None:
    listed = {key for section, key, verdict, _ in compat.rows() if section == "service" and verdict == "honoured"}
    assert listed == set(service._READERS) | {"extends", "profiles"}
    assert {"secrets", "configs", "container_name", "links", "expose", "sysctls"} <= listed
