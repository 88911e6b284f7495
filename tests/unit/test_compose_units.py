"""Durations and sizes as compose files write them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.compose.units import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("1h", 3600.0),
        ("500ms", 0.5),
        ("2us", 2e-6),
        ("2µs", 2e-6),
        ("100ns", 1e-7),
        ("1.5h", 5400.0),
        ("1h2m3s", 3723.0),
        ("0s", 0.0),
        ("30", 30.0),
        ("2.5", 2.5),
        (" 10s ", 10.0),
        (10, 10.0),
        (0.25, 0.25),
    ],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "bad",
    ["", "s", "10x", "1m 30s", "-5s", "abc", "1d", True, None, [1], -1, "1h-3m"])
def test_bad_durations_explain_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match="invalid duration .*expected a number of seconds or a duration such as"):
        parse_duration(bad)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (90, "1m30s"), (3600, "1h"), (0.5, "500ms"), (3723.5, "1h2m3s500ms"), (2e-6, "2us")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=10**12))
def test_duration_round_trip_to_the_microsecond(micros: int) -> None:
    seconds = micros / 1_000_000
    assert parse_duration(format_duration(seconds)) == pytest.approx(seconds, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * 1024**2),
        ("512mb", 512 * 1024**2),
        ("512MB", 512 * 1024**2),
        ("512MiB", 512 * 1024**2),
        ("1g", 1024**3),
        ("1G", 1024**3),
        ("1.5g", int(1.5 * 1024**3)),
        ("100k", 102400),
        ("100kb", 102400),
        ("1024b", 1024),
        ("1024", 1024),
        ("2t", 2 * 1024**4),
        ("10 m", 10 * 1024**2),
        (4096, 4096),
        (0, 0),
    ],
)
def test_sizes(text: object, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "m", "12x", "1.2.3g", "-1m", "1i", "one", True, None, {}, -4])
def test_bad_sizes_explain_the_accepted_forms(bad: object) -> None:
    with pytest.raises(ValueError, match=r"invalid size .*expected a number of bytes or a size such as '512m'"):
        parse_size(bad)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=0, max_value=2**32), st.sampled_from(["", "k", "m", "g", "kb", "MB", "GiB"]))
def test_size_units_are_binary_multiples(n: int, unit: str) -> None:
    factor = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[unit[:1].lower()]
    assert parse_size(f"{n}{unit}") == n * factor
