"""A loaded stack survives JSON and back (runtime.compose.snapshot), secret values excepted."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from runtime.compose import snapshot
from runtime.compose.loader import load_stack
from runtime.compose.model import StackSpec
from runtime.errors import ComposeError

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(ROOT.glob("tests/integration/parity/*/docker-compose.yml")) + sorted(ROOT.glob("stacks/*/*.y*ml"))


def without_values(stack: StackSpec) -> StackSpec:
    return dataclasses.replace(
        stack, secrets=tuple(dataclasses.replace(s, content=None) for s in stack.secrets),
        configs=tuple(dataclasses.replace(c, content=None) for c in stack.configs))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.parent.name)
def test_every_corpus_stack_round_trips(path: Path) -> None:
    try:
        stack = load_stack(path).stack
    except ComposeError:
        pytest.skip("needs a variable or file of its own test")
    assert snapshot.from_json(json.loads(json.dumps(snapshot.to_json(stack)))) == without_values(stack)


def test_secret_values_are_never_written(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: web:1\n    secrets: [token]\n"
        "secrets:\n  token:\n    environment: TOKEN\n")
    stack = load_stack(tmp_path / "compose.yaml", environ={"TOKEN": "hunter2-secret"}).stack
    assert stack.secrets[0].content == b"hunter2-secret"
    text = json.dumps(snapshot.to_json(stack))
    assert "hunter2" not in text
    assert snapshot.from_json(json.loads(text)).secrets[0].content is None


@pytest.mark.parametrize("bad", [None, [], {"project": 3, "services": []}, {"project": "p", "services": [{"x": 1}]},
                                 {"project": "p", "services": "web"}])
def test_a_damaged_snapshot_is_an_error(bad: object) -> None:
    with pytest.raises((TypeError, ValueError, KeyError)):
        snapshot.from_json(bad)
