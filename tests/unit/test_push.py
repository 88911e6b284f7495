"""``armstack push``: the target address, the diff against the target's manifest, the receiver's
path rules and framing (plain data), then the receiver end to end on a local directory."""

from __future__ import annotations

import ast
import base64
import io
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from runtime import pushreceiver as R
from runtime.compose.model import BuildSpec
from runtime.compose.source import StackSource
from runtime.dockerignore import parse_dockerignore
from runtime.errors import TransferError, UsageError
from runtime.push import LocalFile, PushResult, push, receiver_argv, release_files
from runtime.pushplan import (
    DEFAULT_BOARD_PATH,
    PushTarget,
    Selection,
    apply_command,
    diff,
    parse_target,
    release_id,
)

# -- the target ------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "expected"), [
    ("ssh://pi@board", PushTarget("ssh", DEFAULT_BOARD_PATH, "board", "pi")),
    ("ssh://board:/data/stack", PushTarget("ssh", "/data/stack", "board")),
    ("ssh://pi@board:stack", PushTarget("ssh", "stack", "board", "pi")),
    ("ssh://pi@board:2222", PushTarget("ssh", DEFAULT_BOARD_PATH, "board", "pi", 2222)),
    ("ssh://pi@board:2222/srv/app", PushTarget("ssh", "/srv/app", "board", "pi", 2222)),
    ("ssh://pi@10.0.0.7/srv/app", PushTarget("ssh", "/srv/app", "10.0.0.7", "pi")),
    ("ssh://root@[fe80::1]:22/x", PushTarget("ssh", "/x", "[fe80::1]", "root", 22)),
])
def test_ssh_targets(url: str, expected: PushTarget) -> None:
    assert parse_target(url, None) == expected


def test_ssh_destination_and_display() -> None:
    t = parse_target("ssh://root@[fe80::1]:22/x", None)
    assert t.destination == "root@fe80::1"
    assert str(t) == "ssh://root@[fe80::1]:22/x"
    assert parse_target(None, "/mnt/card/stack") == PushTarget("dir", "/mnt/card/stack")


@pytest.mark.parametrize(("url", "to", "words"), [
    (None, None, "exactly one target"),
    ("ssh://b", "/x", "exactly one target"),
    ("board:/srv", None, "not an ssh:// address"),
    ("ssh://-oProxyCommand=x", None, "may not start with '-'"),
    ("ssh://pi@-board", None, "may not start with '-'"),
    ("ssh://board:70000", None, "not a TCP port"),
    ("ssh://board?x", None, "ssh://[user@]host:path"),
])
def test_bad_targets_say_what_is_wrong(url: str | None, to: str | None, words: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_target(url, to)
    assert words in str(err.value)


# -- what is sent ----------------------------------------------------------------------------

OLD = {"compose.yaml": ["f", 0o644, "a" * 64, 10], "api/app.py": ["f", 0o644, "b" * 64, 5],
       "api/gone.txt": ["f", 0o644, "c" * 64, 3], "api/link": ["l", 0o777, "app.py", 0]}


def test_diff_sends_only_what_differs() -> None:
    new = {"compose.yaml": ("f", 0o644, "a" * 64, 10), "api/app.py": ("f", 0o644, "d" * 64, 6),
           "api/link": ("l", 0o777, "other.py", 0), "api/run.sh": ("f", 0o755, "e" * 64, 7),
           "api/empty": ("d", 0o755, "", 0)}
    c = diff(OLD, new)
    assert sorted(c.set) == ["api/app.py", "api/empty", "api/link", "api/run.sh"]
    assert c.send == ["api/app.py", "api/run.sh"]    # only regular files carry contents
    assert c.delete == ["api/gone.txt"]
    assert c.unchanged == 1
    assert c.content_bytes == 13


def test_a_mode_change_is_a_change_and_a_malformed_target_entry_is_resent() -> None:
    new = {"compose.yaml": ("f", 0o600, "a" * 64, 10), "api/app.py": ("f", 0o644, "b" * 64, 5)}
    assert diff(OLD, new).send == ["compose.yaml"]
    assert diff({"api/app.py": ["f", "644", "b" * 64, 5]}, new).send == ["api/app.py", "compose.yaml"]
    assert diff({}, new).unchanged == 0


def test_selection_of_the_files_a_release_holds() -> None:
    sel = Selection(always=frozenset({"compose.yaml", ".env"}),
                    ignore=tuple(parse_dockerignore("notes\n.env\n*.log\n")),
                    contexts=(("api", frozenset({"Dockerfile", "app.py", "lib", "lib/x.py"})),
                              ("api/tools", frozenset({"Dockerfile"}))))
    assert sel.wanted("compose.yaml") and sel.wanted(".env")      # always, even when ignored
    assert not sel.wanted("notes/todo.txt") and not sel.wanted("debug.log")
    assert sel.wanted("conf/app.ini")                              # in no build context
    assert sel.wanted("api") and sel.wanted("api/app.py") and sel.wanted("api/lib/x.py")
    assert not sel.wanted("api/node_modules/big.js")               # the build leaves it out
    assert sel.wanted("api/tools/Dockerfile")                      # sent by one of the two contexts
    root = Selection(contexts=(("", frozenset({"Dockerfile"})),))  # the stack itself is a context
    assert root.wanted("Dockerfile") and not root.wanted("data/blob")


def test_release_id_is_a_hash_of_the_manifest() -> None:
    a = {"x": ("f", 0o644, "a" * 64, 1), "y": ("l", 0o777, "x", 0)}
    b = dict(reversed(list(a.items())))
    assert release_id(a) == release_id(b)
    assert release_id(a) != release_id({**a, "x": ("f", 0o755, "a" * 64, 1)})
    assert len(release_id(a)) == 32


def test_apply_command_names_files_through_the_stack_directory() -> None:
    cmd = apply_command(StackSource(("compose.yaml", "over ride.yaml"), None, ("debug",)), "armstack",
                        "/var/lib/armstack")
    assert cmd == ("armstack --data-dir /var/lib/armstack -f \"$ARMSTACK_STACK_DIR\"/compose.yaml "
                   "-f \"$ARMSTACK_STACK_DIR\"/'over ride.yaml' --profile debug apply")
    assert apply_command(StackSource(("compose.yaml",), "my app"), "armstack") == \
        "armstack -f \"$ARMSTACK_STACK_DIR\"/compose.yaml -p 'my app' apply"


# -- the receiver's rules ----------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a/", "a\0b"])
def test_receiver_refuses_paths_that_leave_the_release(path: str) -> None:
    with pytest.raises(R.PushError):
        R.check_path(path)


def test_receiver_refuses_writing_below_a_symlink_or_file() -> None:
    with pytest.raises(R.PushError, match="below a file or symlink"):
        R.check_manifest({"etc": ["l", 0o777, "/etc", 0], "etc/passwd": ["f", 0o644, "a" * 64, 1]})
    with pytest.raises(R.PushError, match="malformed"):
        R.check_manifest({"x": ["f", 0o644, "a" * 64]})
    R.check_manifest({"a": ["d", 0o755, "", 0], "a/b": ["f", 0o644, "a" * 64, 1]})


def test_receiver_applies_changes_and_deletions() -> None:
    new = R.apply_changes(OLD, {"api/app.py": ["f", 0o644, "d" * 64, 6]}, ["api/gone.txt"])
    assert sorted(new) == ["api/app.py", "api/link", "compose.yaml"]
    assert new["api/app.py"][2] == "d" * 64


def test_frames_round_trip_and_a_short_stream_is_an_error() -> None:
    buf = io.BytesIO()
    size = R.write_frame(buf, {"release": None, "manifest": OLD})
    assert size == len(buf.getvalue())
    assert R.read_frame(io.BytesIO(buf.getvalue())) == {"release": None, "manifest": OLD}
    with pytest.raises(R.PushError, match="ended early"):
        R.read_frame(io.BytesIO(buf.getvalue()[:-3]))


# -- the local side's file list ----------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)


def test_release_files_honour_dockerignore_and_armstackignore(tmp_path: Path) -> None:
    _write(tmp_path, {"compose.yaml": "services: {}\n", ".env": "A=1\n", ".armstackignore": "notes\n.env\n",
                      "notes/todo.txt": "x", "conf/app.ini": "k=v",
                      "api/Dockerfile": "FROM scratch\n", "api/.dockerignore": "node_modules\nDockerfile\n",
                      "api/node_modules/big.js": "x" * 1000, "api/app.py": "print(1)\n"})
    (tmp_path / "api" / "empty").mkdir()
    os.symlink("app.py", tmp_path / "api" / "main.py")
    files = release_files(tmp_path, [("api", BuildSpec(context=str(tmp_path / "api")))], ["compose.yaml", ".env"])
    assert sorted(files) == [".armstackignore", ".env", "api/.dockerignore", "api/Dockerfile", "api/app.py",
                             "api/empty", "api/main.py", "compose.yaml", "conf/app.ini"]
    assert files["api/main.py"].entry == ("l", 0o777, "app.py", 0)
    assert files["api/empty"].entry[0] == "d"
    assert files["api/app.py"].entry[3] == len("print(1)\n")


def test_a_build_context_outside_the_stack_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stack").mkdir()
    (tmp_path / "elsewhere").mkdir()
    with pytest.raises(TransferError, match="outside the stack directory"):
        release_files(tmp_path / "stack", [("api", BuildSpec(context=str(tmp_path / "elsewhere")))], [])


# -- the receiver on a local directory ----------------------------------------------------------


def _ship(src: Path, board: Path) -> tuple[dict[str, LocalFile], PushResult]:
    files = release_files(src, [], ["compose.yaml"])
    return files, push(PushTarget("dir", str(board)), files, apply=None, out=io.StringIO())


def test_push_sends_changed_files_only_and_swaps_the_release(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    board.parent.mkdir()
    _write(src, {"compose.yaml": "services: {}\n", "data/blob": "x" * 200_000, "data/old": "old"})
    _, first = _ship(src, board)
    assert first.previous is None and len(first.changes.send) == 3
    assert (board / "data" / "blob").read_text() == "x" * 200_000
    assert os.readlink(board) == f"stack.armstack/releases/{first.release}"

    _write(src, {"compose.yaml": "services: {}\n# one line\n"})
    (src / "data" / "old").unlink()
    _, second = _ship(src, board)
    assert second.previous == first.release
    assert second.changes.send == ["compose.yaml"] and second.changes.delete == ["data/old"]
    assert second.sent_bytes < 10_000
    assert (board / "compose.yaml").read_text().endswith("# one line\n")
    assert not (board / "data" / "old").exists()
    # The unchanged file is the previous release's, hard-linked, not a copy.
    releases = board.parent / "stack.armstack" / "releases"
    assert os.stat(board / "data" / "blob").st_ino == os.stat(releases / first.release / "data" / "blob").st_ino

    _, third = _ship(src, board)
    assert third.release == second.release and third.changes.set == {}


def test_a_push_that_only_deletes(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    board.parent.mkdir()
    _write(src, {"compose.yaml": "services: {}\n", "old.txt": "x"})
    _ship(src, board)
    (src / "old.txt").unlink()
    _, second = _ship(src, board)
    assert second.changes.send == [] and second.changes.delete == ["old.txt"]
    assert not (board / "old.txt").exists() and (board / "compose.yaml").is_file()


def _receiver(board: Path) -> subprocess.Popen[bytes]:
    argv = receiver_argv(PushTarget("dir", str(board)), None)
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_an_interrupted_or_corrupt_push_leaves_the_current_release(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    board.parent.mkdir()
    _write(src, {"compose.yaml": "services: {}\n"})
    _, first = _ship(src, board)
    home = board.parent / "stack.armstack"

    # The sender stops half-way through the contents: nothing is swapped.
    proc = _receiver(board)
    assert proc.stdin is not None and proc.stdout is not None
    hello = R.read_frame(proc.stdout)
    assert hello["release"] == first.release
    R.write_frame(proc.stdin, {"release": "f" * 32, "delete": [],
                               "set": {"big": ["f", 0o644, "0" * 64, 100_000]}})
    proc.stdin.write(zlib.compressobj().compress(b"y" * 50_000))
    proc.stdin.close()
    answer = R.read_frame(proc.stdout)
    assert proc.wait(timeout=30) == 1
    assert answer["ok"] is False and "ended early" in answer["error"]
    assert os.readlink(board).endswith(first.release)
    assert not (home / "releases" / ("f" * 32)).exists()

    # Contents that do not match their hash are refused the same way.
    proc = _receiver(board)
    assert proc.stdin is not None and proc.stdout is not None
    R.read_frame(proc.stdout)
    R.write_frame(proc.stdin, {"release": "e" * 32, "delete": [], "set": {"x": ["f", 0o644, "0" * 64, 3]}})
    z = zlib.compressobj()
    proc.stdin.write(z.compress(b"abc") + z.flush())
    proc.stdin.close()
    answer = R.read_frame(proc.stdout)
    assert proc.wait(timeout=30) == 1 and "sha256 does not match" in answer["error"]
    assert os.readlink(board).endswith(first.release)
    assert [n for n in os.listdir(home) if n.startswith("incoming-")] == []


def test_a_killed_receiver_leaves_staging_that_the_next_push_removes(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    board.parent.mkdir()
    _write(src, {"compose.yaml": "services: {}\n"})
    _, first = _ship(src, board)
    home = board.parent / "stack.armstack"
    (home / "incoming-deadbeef").mkdir()    # what a receiver killed mid-push leaves
    (home / "incoming-deadbeef" / "compose.yaml").write_text("half")
    (home / "incoming-deadbeef.json").write_text("{}")
    _write(src, {"compose.yaml": "services: {}\n# v2\n"})
    _, second = _ship(src, board)
    assert not (home / "incoming-deadbeef").exists() and not (home / "incoming-deadbeef.json").exists()
    assert (board / "compose.yaml").read_text().endswith("# v2\n")
    assert second.previous == first.release


def test_a_file_changed_on_the_target_makes_the_next_push_send_everything(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    board.parent.mkdir()
    _write(src, {"compose.yaml": "services: {}\n", "conf/app.ini": "k=v\n"})
    _, first = _ship(src, board)
    (board / "conf" / "app.ini").write_text("edited on the board\n")
    _write(src, {"compose.yaml": "services: {}\n# v2\n"})
    with pytest.raises(TransferError, match="changed or removed on the target"):
        _ship(src, board)
    assert os.readlink(board).endswith(first.release)   # still the release that was there
    _, again = _ship(src, board)
    assert sorted(again.changes.send) == ["compose.yaml", "conf/app.ini"]
    assert (board / "conf" / "app.ini").read_text() == "k=v\n"


def test_a_directory_made_by_hand_is_kept_aside_once(tmp_path: Path) -> None:
    src, board = tmp_path / "src", tmp_path / "board" / "stack"
    _write(src, {"compose.yaml": "services: {}\n"})
    _write(board, {"compose.yaml": "by hand\n"})
    _ship(src, board)
    assert (board.parent / "stack.before-armstack" / "compose.yaml").read_text() == "by hand\n"
    assert board.is_symlink()


def test_a_target_that_cannot_run_the_receiver_is_a_clear_error(tmp_path: Path) -> None:
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\necho 'sh: 1: python3: not found' >&2\nexit 127\n")
    fake.chmod(0o755)
    with pytest.raises(TransferError, match="did not answer as armstack's receiver.*exit 127"):
        push(parse_target("ssh://pi@board", None), {}, apply=None, out=io.StringIO(), ssh=[str(fake)])


def test_a_target_that_answers_text_is_stopped_not_waited_on(tmp_path: Path) -> None:
    """A login script that prints a greeting corrupts the stream: push says so instead of hanging."""
    fake = tmp_path / "ssh"
    fake.write_text("#!/bin/sh\necho 'Welcome to the board'\nexec cat > /dev/null\n")
    fake.chmod(0o755)
    with pytest.raises(TransferError, match="did not answer as armstack's receiver"):
        push(parse_target("ssh://pi@board", None), {}, apply=None, out=io.StringIO(), ssh=[str(fake)])


def test_the_receiver_code_runs_on_its_own(tmp_path: Path) -> None:
    """What is sent is the receiver without docstrings, and it runs without the runtime package."""
    argv = receiver_argv(PushTarget("dir", str(tmp_path / "s")), None)
    assert len(argv[2]) < 6000
    res = subprocess.run([sys.executable, "-I", "-c", argv[2], str(tmp_path / "s")], input=b"", capture_output=True,
                         timeout=30, cwd="/")
    assert res.returncode == 1   # no plan came: it says so in its answer frame
    hello = R.read_frame(io.BytesIO(res.stdout))
    assert hello == {"release": None, "manifest": {}}
    answer = _second_frame(res.stdout)
    assert isinstance(answer, dict) and "ended early" in answer["error"]


def test_the_receiver_is_written_for_old_boards_pythons() -> None:
    """Boards run older Pythons than the sender: what is sent parses as Python 3.7."""
    code = receiver_argv(PushTarget("dir", "/x"), None)[2]
    source = zlib.decompress(base64.b64decode(code.split("b64decode('")[1].split("'")[0])).decode()
    ast.parse(source, feature_version=(3, 7))
    assert "import runtime" not in source and "from runtime" not in source


def _second_frame(data: bytes) -> object:
    stream = io.BytesIO(data)
    R.read_frame(stream)
    return R.read_frame(stream)
