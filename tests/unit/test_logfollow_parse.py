"""Pure parts of the log follower: frame decoding, line assembly, timestamps, dedup."""

from __future__ import annotations

import io
import random
import struct
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.logfollow import (
    Deduper,
    FrameDecoder,
    LineAssembler,
    LogFollower,
    LogLine,
    parse_timestamp,
    since_param,
    split_timestamp,
)
from runtime.logs import LogPresenter

T0 = 1714557600 * 10**9   # 2024-05-01T10:00:00Z


def frame(stream_id: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream_id, len(payload)) + payload


def stamp(ns: int) -> str:
    secs, frac = divmod(ns, 10**9)
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2024-05-01T10:00:00.123456789Z", T0 + 123456789),
        ("2024-05-01T10:00:00.000000001Z", T0 + 1),
        ("2024-05-01T10:00:00.5Z", T0 + 500_000_000),       # Go trims trailing zeros
        ("2024-05-01T10:00:00Z", T0),
        ("2024-05-01T12:00:00.25+02:00", T0 + 250_000_000),
        ("2024-05-01t10:00:00z", T0),
    ],
)
def test_parse_timestamp(text: str, ns: int) -> None:
    assert parse_timestamp(text) == ns


@pytest.mark.parametrize(
    "text",
    ["", "hello", "2024-05-01 10:00:00Z", "2024-05-01T10:00:00", "2024-05-01T10:00:00.Z",
     "2024-05-01T10:00:00.1234567891Z", "2024-13-01T10:00:00Z", "2024-05-01T10:00:00.12abZ"],
)
def test_parse_timestamp_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text)


@settings(deadline=None)
@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_parse_timestamp_round_trips_every_nanosecond(ns: int) -> None:
    assert parse_timestamp(stamp(ns)) == ns


def test_split_timestamp() -> None:
    assert split_timestamp("2024-05-01T10:00:00.000000001Z hello world") == (T0 + 1, "hello world")
    assert split_timestamp("2024-05-01T10:00:00Z ") == (T0, "")
    assert split_timestamp("no stamp here") == (None, "no stamp here")
    assert split_timestamp("nospace") == (None, "nospace")


def test_since_param_is_exact() -> None:
    assert since_param(T0 + 1) == "1714557600.000000001"
    assert since_param(0) == "0.000000000"


# -- frames -----------------------------------------------------------------------------------


def test_frame_decoder_whole_frames() -> None:
    d = FrameDecoder()
    data = frame(1, b"out\n") + frame(2, b"err\n") + frame(1, b"")
    assert d.feed(data) == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert d.pending == 0


def test_frame_decoder_byte_by_byte() -> None:
    d = FrameDecoder()
    data = frame(1, b"hello") + frame(2, b"world")
    got: list[tuple[str, bytes]] = []
    for i in range(len(data)):
        got += d.feed(data[i : i + 1])
    assert got == [("stdout", b"hello"), ("stderr", b"world")]


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([1, 2]), st.binary(max_size=40)), max_size=20),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1),
)
def test_frame_decoder_any_chunking(frames: list[tuple[int, bytes]], cuts: list[int]) -> None:
    data = b"".join(frame(s, p) for s, p in frames)
    d = FrameDecoder()
    got: list[tuple[str, bytes]] = []
    pos, i = 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        got += d.feed(data[pos : pos + n])
        pos, i = pos + n, i + 1
    names = {1: "stdout", 2: "stderr"}
    assert got == [(names[s], p) for s, p in frames if p]
    assert d.pending == 0


# -- lines ------------------------------------------------------------------------------------


def test_assembler_buffers_until_newline() -> None:
    a = LineAssembler()
    ts = stamp(T0 + 5)
    assert a.feed("stdout", f"{ts} hel".encode()) == []
    assert a.feed("stdout", b"lo\n") == [LogLine("stdout", "hello", T0 + 5)]


def test_assembler_several_lines_in_one_chunk_and_crlf() -> None:
    a = LineAssembler()
    data = f"{stamp(T0)} a\r\n{stamp(T0 + 1)} b\n{stamp(T0 + 2)} c".encode()
    assert a.feed("stderr", data) == [LogLine("stderr", "a", T0), LogLine("stderr", "b", T0 + 1)]
    assert a.flush() == [LogLine("stderr", "c", T0 + 2)]
    assert a.flush() == []


def test_assembler_keeps_streams_apart() -> None:
    a = LineAssembler()
    assert a.feed("stdout", f"{stamp(T0)} out-".encode()) == []
    assert a.feed("stderr", f"{stamp(T0 + 1)} err\n".encode()) == [LogLine("stderr", "err", T0 + 1)]
    assert a.feed("stdout", b"rest\n") == [LogLine("stdout", "out-rest", T0)]


def test_assembler_utf8_cut_between_chunks() -> None:
    a = LineAssembler()
    raw = f"{stamp(T0)} héllo ✓\n".encode()
    cut = raw.index("✓".encode()) + 1
    assert a.feed("stdout", raw[:cut]) == []
    assert a.feed("stdout", raw[cut:]) == [LogLine("stdout", "héllo ✓", T0)]


def test_assembler_invalid_utf8_is_replaced_not_fatal() -> None:
    a = LineAssembler()
    assert a.feed("stdout", f"{stamp(T0)} ".encode() + b"\xff\xfe\n") == [LogLine("stdout", "\ufffd\ufffd", T0)]


def test_assembler_line_without_timestamp() -> None:
    assert LineAssembler().feed("stdout", b"plain\n") == [LogLine("stdout", "plain", None)]
    assert LineAssembler(timestamps=False).feed("stdout", b"2024 x\n") == [LogLine("stdout", "2024 x", None)]


def test_assembler_empty_lines_are_lines() -> None:
    a = LineAssembler()
    assert a.feed("stdout", f"{stamp(T0)} \n".encode()) == [LogLine("stdout", "", T0)]


_LINE_CHARS = st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",))


@settings(deadline=None)
@given(st.lists(st.text(alphabet=_LINE_CHARS, max_size=20), max_size=15), st.randoms())
def test_assembler_any_chunking_gives_the_same_lines(texts: list[str], rnd: random.Random) -> None:
    data = "".join(f"{stamp(T0 + i)} {t}\n" for i, t in enumerate(texts)).encode()
    a = LineAssembler()
    got: list[LogLine] = []
    pos = 0
    while pos < len(data):
        n = rnd.randint(1, 30)
        got += a.feed("stdout", data[pos : pos + n])
        pos += n
    got += a.flush()
    assert got == [LogLine("stdout", t, T0 + i) for i, t in enumerate(texts)]


# -- dedup ------------------------------------------------------------------------------------


def L(ts: int | None, text: str, stream: str = "stdout") -> LogLine:
    return LogLine(stream, text, ts)


def run(d: Deduper, lines: list[LogLine]) -> list[str]:
    d.attach()
    return [ln.text for ln in lines if d.accept(ln)]


def test_first_attachment_accepts_everything() -> None:
    d = Deduper()
    assert d.since_ns is None
    assert run(d, [L(T0, "a"), L(T0, "a"), L(T0 + 1, "b")]) == ["a", "a", "b"]
    assert d.last_ns == T0 + 1


def test_reattach_skips_replayed_lines() -> None:
    d = Deduper()
    first = [L(T0 + i, f"line {i}") for i in range(5)]
    assert run(d, first) == [f"line {i}" for i in range(5)]
    # The engine replays from `since` (inclusive, with a margin), then new output follows.
    replay = first[3:] + [L(T0 + 10 + i, f"line {5 + i}") for i in range(3)]
    assert run(d, replay) == ["line 5", "line 6", "line 7"]


def test_since_is_just_before_last_timestamp() -> None:
    d = Deduper()
    run(d, [L(T0 + 5_000_000, "x")])
    assert d.since_ns is not None
    assert d.since_ns < T0 + 5_000_000
    assert T0 + 5_000_000 - d.since_ns <= 10_000_000


def test_equal_timestamps_are_counted() -> None:
    d = Deduper()
    # Two identical lines and a different one share the last timestamp.
    assert run(d, [L(T0, "x"), L(T0 + 1, "dup"), L(T0 + 1, "dup"), L(T0 + 1, "other")]) == [
        "x", "dup", "dup", "other"]
    # Replay of all three plus a third "dup" written in the same nanosecond: only that one is new.
    assert run(d, [L(T0 + 1, "dup"), L(T0 + 1, "other"), L(T0 + 1, "dup"), L(T0 + 1, "dup")]) == ["dup"]
    # And a later attachment knows about all four.
    assert run(d, [L(T0 + 1, "dup")] * 3 + [L(T0 + 1, "other"), L(T0 + 2, "new")]) == ["new"]


def test_equal_timestamps_distinguish_streams() -> None:
    d = Deduper()
    run(d, [L(T0, "same", "stdout")])
    assert run(d, [L(T0, "same", "stdout"), L(T0, "same", "stderr")]) == ["same"]


def test_after_replay_older_timestamps_are_new_output() -> None:
    # An NTP step backwards during the new run: those lines were never printed.
    d = Deduper()
    run(d, [L(T0 + 100, "a")])
    assert run(d, [L(T0 + 100, "a"), L(T0 + 200, "b"), L(T0 + 50, "c")]) == ["b", "c"]
    assert d.last_ns == T0 + 200   # resume point stays the newest timestamp


def test_lines_without_timestamp_always_pass() -> None:
    d = Deduper()
    run(d, [L(T0, "a")])
    assert run(d, [L(None, "raw"), L(T0, "a"), L(None, "raw")]) == ["raw", "raw"]


def test_empty_reattach_changes_nothing() -> None:
    d = Deduper()
    run(d, [L(T0, "a"), L(T0, "b")])
    assert run(d, []) == []
    assert run(d, [L(T0, "a"), L(T0, "b"), L(T0 + 1, "c")]) == ["c"]


@settings(deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=6), st.sampled_from(["a", "b"]),
                       st.sampled_from(["stdout", "stderr"])), max_size=40),
    st.lists(st.integers(min_value=0, max_value=40), max_size=5),
)
def test_any_restart_pattern_prints_each_line_exactly_once(
    entries: list[tuple[int, str, str]], cuts: list[int]
) -> None:
    """A container log (timestamps never decreasing) read by several attachments, each starting
    where the engine's `since` filter would: every line is printed exactly once, in order."""
    log: list[LogLine] = []
    ts = T0
    for step, text, stream in entries:
        ts += step   # step 0: several lines in the same nanosecond
        log.append(LogLine(stream, text, ts))
    d = Deduper()
    printed: list[LogLine] = []
    end_points = sorted({min(c, len(log)) for c in cuts}) + [len(log)]
    for end in end_points:
        d.attach()
        since = d.since_ns
        visible = [ln for ln in log[:end] if since is None or (ln.ts_ns or 0) >= since]
        printed += [ln for ln in visible if d.accept(ln)]
    assert printed == log


# -- the follower's thread bookkeeping, with a fake engine stream -------------------------------


class FakeStream:
    def __init__(self, chunks: list[tuple[str, bytes]]) -> None:
        self._it = iter(chunks)

    def __iter__(self) -> FakeStream:
        return self

    def __next__(self) -> tuple[str, bytes]:
        return next(self._it)

    def close(self) -> None:
        pass


def test_follower_reports_engine_errors_as_runtime_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from runtime import logfollow
    from runtime.logs import LogPresenter

    def boom(client: object, cid: str, *, since_ns: int | None = None, follow: bool = True) -> FakeStream:
        raise RuntimeError("engine went away")

    monkeypatch.setattr(logfollow, "open_log_stream", boom)
    out = io.StringIO()
    follower = logfollow.LogFollower(object(), LogPresenter(out))  # type: ignore[arg-type]
    follower.follow("db", "c" * 64)
    assert follower.wait(timeout=5)
    assert "warning: stopped following the logs of db (cccccccccccc): engine went away" in out.getvalue()
    assert follower.following() == []


def test_follower_resumes_from_last_line_on_next_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from runtime import logfollow
    from runtime.logs import LogPresenter

    log = [frame(1, f"{stamp(T0 + i)} line {i}\n".encode()) for i in range(4)]
    seen_since: list[int | None] = []

    def fake(client: object, cid: str, *, since_ns: int | None = None, follow: bool = True) -> FakeStream:
        seen_since.append(since_ns)
        decoder = FrameDecoder()
        visible = [c for i, c in enumerate(log) if since_ns is None or T0 + i >= since_ns]
        chunks = [f for c in visible for f in decoder.feed(c)]
        return FakeStream(chunks)

    monkeypatch.setattr(logfollow, "open_log_stream", fake)
    out = io.StringIO()
    follower = logfollow.LogFollower(object(), LogPresenter(out, fmt="text", color=False))  # type: ignore[arg-type]
    follower.follow("db", "c1")
    assert follower.wait(timeout=5)
    log.append(frame(2, f"{stamp(T0 + 10)} line 10\n".encode()))
    follower.follow("db", "c1")
    assert follower.wait(timeout=5)
    # Each attachment is a followed read plus a plain catch-up read, both from the resume point.
    assert seen_since[0] is None and all(s is not None for s in seen_since[1:])
    assert len(seen_since) == 4
    assert [ln.split("| ")[1] for ln in out.getvalue().splitlines()] == [
        "line 0", "line 1", "line 2", "line 3", "line 10"]


def test_an_unattached_service_is_not_followed() -> None:
    follower = LogFollower(cast(Any, None), LogPresenter(io.StringIO(), color=False))
    follower.set_unattached(["quiet"])
    follower.follow("quiet", "c1")
    assert follower.following() == []
