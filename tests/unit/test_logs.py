"""The log presenter: prefixes, colours, JSON lines, splitting and thread safety."""

from __future__ import annotations

import io
import json
import re
import threading
import time

import pytest

from runtime import cli, logs
from runtime.logs import LogPresenter, color_wanted, rfc3339, split_lines
from runtime.settings import RuntimeSettings

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _no_color_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    monkeypatch.setattr(logs, "_now", lambda: 1714557600.5)


def test_prefix_padded_to_longest_name_including_runtime() -> None:
    out = io.StringIO()
    p = LogPresenter(out)
    p.add_names(["db", "web"])
    p.line("db", "ready")
    p.line("web", "listening")
    p.runtime("stack up")
    assert out.getvalue().splitlines() == [
        "db       | ready",
        "web      | listening",
        "armstack | stack up",
    ]


def test_long_name_widens_every_prefix() -> None:
    out = io.StringIO()
    p = LogPresenter(out)
    p.add_names(["a", "very-long-service"])
    p.line("a", "x")
    p.runtime("y")
    assert out.getvalue().splitlines() == ["a                 | x", "armstack          | y"]


def test_no_color_on_plain_stream_by_default() -> None:
    out = io.StringIO()
    LogPresenter(out).line("db", "x")
    assert not ANSI.search(out.getvalue())


def test_color_on_tty_and_deterministic_per_service() -> None:
    out = FakeTTY()
    p = LogPresenter(out)
    assert p.color
    p.add_names(["db", "web", "cache"])
    p.line("db", "one")
    p.line("web", "two")
    p.line("db", "three")
    lines = out.getvalue().splitlines()
    codes = [ANSI.findall(ln)[0] for ln in lines]
    assert codes[0] == codes[2] != codes[1]
    assert [ANSI.sub("", ln) for ln in lines] == ["db       | one", "web      | two", "db       | three"]
    # The same names in the same order get the same colours in another presenter.
    q = LogPresenter(FakeTTY())
    q.add_names(["db", "web", "cache"])
    assert [q.color_of(n) for n in ("db", "web", "cache")] == [p.color_of(n) for n in ("db", "web", "cache")]
    assert len({p.color_of(n) for n in ("db", "web", "cache", "armstack")}) == 4


def test_palette_cycles_after_all_colours_used() -> None:
    p = LogPresenter(FakeTTY())
    names = [f"s{i}" for i in range(25)]
    p.add_names(names)
    assert p.color_of("s0") == p.color_of("s10") == p.color_of("s20")
    assert p.color_of("s0") != p.color_of("s1")


def test_no_color_env_disables_auto_colour() -> None:
    out = FakeTTY()
    LogPresenter(out, color=RuntimeSettings.from_environ({"NO_COLOR": "1"}).color).line("db", "x")
    assert not ANSI.search(out.getvalue())


def test_empty_no_color_is_ignored() -> None:
    assert LogPresenter(FakeTTY(), color=RuntimeSettings.from_environ({"NO_COLOR": ""}).color).color


def test_the_no_color_flag_wins_over_the_environment() -> None:
    args = cli.parse_args(["--no-color", "status"])
    assert RuntimeSettings.from_args(args, {"NO_COLOR": ""}).color is False


def test_explicit_color_flag_wins_over_no_color() -> None:
    out = io.StringIO()
    LogPresenter(out, color=True).line("db", "x")
    assert ANSI.search(out.getvalue())


def test_explicit_false_never_colours() -> None:
    out = FakeTTY()
    LogPresenter(out, color=False).line("db", "x")
    assert not ANSI.search(out.getvalue())


def test_dumb_terminal_gets_no_colour() -> None:
    assert not color_wanted(FakeTTY(), RuntimeSettings.from_environ({"TERM": "dumb"}).color)
    assert color_wanted(FakeTTY(), RuntimeSettings.from_environ({"TERM": "xterm"}).color)


def test_json_mode_one_object_per_line() -> None:
    out = FakeTTY()
    p = LogPresenter(out, fmt="json")
    assert not p.color
    p.line("db", "ready", stream="stderr", time=0.25)
    p.runtime("stopping", level="warning")
    first, second = (json.loads(ln) for ln in out.getvalue().splitlines())
    assert first == {"service": "db", "stream": "stderr", "time": "1970-01-01T00:00:00.250000Z", "line": "ready"}
    assert second["service"] == "armstack"
    assert second["level"] == "warning"
    assert second["line"] == "stopping"
    assert second["time"] == rfc3339(1714557600.5)


def test_json_mode_keeps_unicode_and_quotes() -> None:
    out = io.StringIO()
    LogPresenter(out, fmt="json").line("db", 'say "héllo"\t✓')
    assert json.loads(out.getvalue())["line"] == 'say "héllo"\t✓'


def test_bad_format_rejected() -> None:
    with pytest.raises(ValueError, match="text"):
        LogPresenter(io.StringIO(), fmt="xml")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a", ["a"]),
        ("a\n", ["a"]),
        ("a\r\n", ["a"]),
        ("a\nb", ["a", "b"]),
        ("a\r\nb\r\n", ["a", "b"]),
        ("a\n\n", ["a", ""]),
        ("", [""]),
        ("\n", [""]),
        ("a\x0cb", ["a\x0cb"]),   # only newlines split
    ],
)
def test_split_lines(text: str, expected: list[str]) -> None:
    assert split_lines(text) == expected


def test_multi_line_text_gets_a_prefix_per_line() -> None:
    out = io.StringIO()
    p = LogPresenter(out)
    p.line("db", "Traceback:\n  File x\nError\n")
    assert out.getvalue() == "db       | Traceback:\ndb       |   File x\ndb       | Error\n"


def test_runtime_warning_is_tagged_in_text_mode() -> None:
    out = io.StringIO()
    p = LogPresenter(out)
    p.runtime("disk at 90 %", level="warning")
    p.runtime("started")
    assert out.getvalue().splitlines() == ["armstack | warning: disk at 90 %", "armstack | started"]


def test_timestamps_option_in_text_mode() -> None:
    out = io.StringIO()
    LogPresenter(out, timestamps=True).line("db", "x", time=0)
    assert out.getvalue() == "db       | 1970-01-01T00:00:00.000000Z x\n"


def test_unknown_service_is_registered_on_first_line() -> None:
    out = io.StringIO()
    p = LogPresenter(out)
    p.line("a-much-longer-name", "x")
    assert p.width == len("a-much-longer-name")


def test_broken_pipe_is_swallowed_and_later_lines_dropped() -> None:
    class Broken(io.StringIO):
        def write(self, s: str) -> int:
            raise BrokenPipeError

    p = LogPresenter(Broken())
    p.line("db", "x")
    p.line("db", "y")   # no exception either


class SlowWriter(io.StringIO):
    """Writes one character at a time and yields the GIL, to provoke interleaving."""

    def write(self, s: str) -> int:
        for i, ch in enumerate(s):
            super().write(ch)
            if i % 8 == 0:
                time.sleep(0)
        return len(s)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_concurrent_lines_never_interleave(fmt: str) -> None:
    out = SlowWriter()
    p = LogPresenter(out, fmt=fmt)  # type: ignore[arg-type]
    names = [f"svc{i}" for i in range(8)]
    p.add_names(names)
    per_thread = 60
    barrier = threading.Barrier(len(names))

    def worker(name: str) -> None:
        barrier.wait()
        for i in range(per_thread):
            p.line(name, f"{name} line {i} " + "x" * (i % 37), stream="stderr" if i % 2 else "stdout")
            if i % 20 == 0:
                p.line(name, f"{name} multi {i} a\n{name} multi {i} b")

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    lines = out.getvalue().splitlines()
    assert len(lines) == len(names) * (per_thread + 2 * (per_thread // 20))
    seen: dict[str, list[int]] = {n: [] for n in names}
    pattern = re.compile(r"^(svc\d) +\| (svc\d) (line|multi) (\d+)(?: x*| [ab])$")
    for ln in lines:
        if fmt == "json":
            obj = json.loads(ln)
            body, svc = obj["line"], obj["service"]
            assert obj["line"].startswith(svc)
            m = re.match(r"^(svc\d) (line|multi) (\d+)", body)
            assert m
            if m.group(2) == "line":
                seen[svc].append(int(m.group(3)))
        else:
            m = pattern.match(ln)
            assert m, ln
            assert m.group(1) == m.group(2)
            if m.group(3) == "line":
                seen[m.group(1)].append(int(m.group(4)))
    for name in names:
        assert seen[name] == list(range(per_thread))
