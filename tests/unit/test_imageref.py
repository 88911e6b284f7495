"""Image references normalised to the form the engine lists (``RepoTags``)."""

from __future__ import annotations

import pytest

from runtime.imageref import normalize_ref, same_image
from runtime.observed import ObservedImage, ObservedState


@pytest.mark.parametrize(("ref", "want"), [
    ("postgres:14", "postgres:14"),
    ("postgres", "postgres:latest"),
    ("library/postgres:14", "postgres:14"),
    ("docker.io/library/postgres:14", "postgres:14"),
    ("docker.io/postgres:14", "postgres:14"),
    ("index.docker.io/library/postgres:14", "postgres:14"),
    ("registry-1.docker.io/library/postgres", "postgres:latest"),
    ("docker.io/myuser/app:1", "myuser/app:1"),
    ("myuser/app", "myuser/app:latest"),
    ("docker.io/library/team/app:2", "library/team/app:2"),   # only Hub's one-level library/ is dropped
    ("localhost:5000/app", "localhost:5000/app:latest"),
    ("localhost/app:3", "localhost/app:3"),
    ("ghcr.io/org/app:1.2", "ghcr.io/org/app:1.2"),
    ("registry.local:5000/org/app:v1", "registry.local:5000/org/app:v1"),
    ("docker.io/library/postgres@sha256:" + "a" * 64, "postgres@sha256:" + "a" * 64),
    ("postgres:14@sha256:" + "b" * 64, "postgres:14@sha256:" + "b" * 64),
    ("sha256:" + "c" * 64, "sha256:" + "c" * 64),
])
def test_normalize_ref(ref: str, want: str) -> None:
    assert normalize_ref(ref) == want
    assert normalize_ref(want) == want   # idempotent


def test_same_image() -> None:
    assert same_image("docker.io/library/alpine", "alpine:latest")
    assert not same_image("ghcr.io/alpine", "alpine")


def test_a_fully_qualified_reference_finds_the_local_image() -> None:
    state = ObservedState(images=(ObservedImage("sha256:pg", tags=("postgres:14",)),
                                  ObservedImage("sha256:app", tags=("localhost:5000/app:latest",))))
    for ref in ("docker.io/library/postgres:14", "docker.io/postgres:14", "index.docker.io/library/postgres:14",
                "postgres:14"):
        found = state.image(ref)
        assert found is not None and found.id == "sha256:pg", ref
    app = state.image("localhost:5000/app")
    assert app is not None and app.id == "sha256:app"
    assert state.image("postgres:15") is None and state.image("sha256:pg") is not None
