"""Property tests: whatever the input, loading returns a stack or raises ComposeError, nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.compose import load_text
from runtime.compose.service import _READERS
from runtime.errors import ComposeError

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["8080:80", "data:/data", "./x:/x:ro", "${A:-1}", "${B:?need}", "$$", "10s", "512m", "no",
                     "service:a", "on-failure:2", "CMD", "a", "b", "default", "/abs", "1-3:1-3", "container:x"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(["target", "source", "type", "test", "condition", "external", "name",
                                         "context", "args", "driver", "a", "b", "x-y"]), inner, max_size=4),
    ),
    max_leaves=12,
)
services = st.dictionaries(
    st.sampled_from(["a", "b", "c", "bad name", "x-ext"]),
    st.one_of(values, st.dictionaries(st.sampled_from(sorted(_READERS)), values, max_size=6)),
    max_size=3,
)
documents = st.one_of(
    values,
    st.fixed_dictionaries(
        {"services": services},
        optional={"version": scalars, "name": scalars, "volumes": values, "networks": values, "x-a": values},
    ),
)


def _check(text: str, workdir: Path) -> None:
    try:
        result = load_text(text, workdir=workdir, environ={"A": "1"})
    except ComposeError as exc:
        assert exc.problems, "a ComposeError always carries at least one problem"
        assert all(p.message for p in exc.problems)
    else:
        assert all(s.name in ("a", "b", "c") for s in result.stack.services)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(documents)
def test_any_document_loads_or_raises_compose_error(tmp_path: Path, doc: Any) -> None:
    _check(yaml.safe_dump(doc, sort_keys=False), tmp_path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(alphabet="services:\n -{}[]&*<>'\"$#!|,?ab12", max_size=80))
def test_any_text_loads_or_raises_compose_error(tmp_path: Path, text: str) -> None:
    _check(text, tmp_path)
