"""StackSource's JSON form (what an apply request carries) and the CLI arguments it names."""

from __future__ import annotations

import json

import pytest

from runtime.compose.source import MAX_LISTED, SELECTIONS, StackSource
from runtime.settings import RuntimeSettings


def test_json_round_trip_leaves_the_variables_behind() -> None:
    src = StackSource(("/a/compose.yaml", "/a/device.yaml"), "demo", ("debug", "*"), {"SECRET": "x"})
    doc = json.loads(json.dumps(src.to_json()))
    assert "SECRET" not in json.dumps(doc)
    back = StackSource.from_json(doc)
    assert back == src and back.env is None


@pytest.mark.parametrize("doc, field", [
    (None, "'source'"),
    ({"paths": "/a/compose.yaml"}, "paths"),
    ({"paths": []}, "paths"),
    ({"paths": ["compose.yaml"]}, "paths"),
    ({"paths": ["/a\0b"]}, "paths"),
    ({"paths": ["/a"] * (MAX_LISTED + 2)}, "paths"),
    ({"paths": ["/a"], "project": 5}, "project"),
    ({"paths": ["/a"], "profiles": "debug"}, "profiles"),
    ({"paths": ["/a"], "profiles": ["a b"]}, "profiles"),
    ({"paths": ["/a"], "profiles": [1]}, "profiles"),
    ({"paths": ["/a"], "profiles": ["p"] * (MAX_LISTED + 1)}, "profiles"),
])
def test_from_json_refuses_anything_but_the_schema(doc: object, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        StackSource.from_json(doc)


def test_cli_args_name_files_project_and_profiles() -> None:
    assert StackSource(("/s/a.yaml", "/s/b.yaml"), "demo", ("debug", "x")).cli_args() == [
        "-f", "/s/a.yaml", "-f", "/s/b.yaml", "-p", "demo", "--profile", "debug", "--profile", "x"]
    assert StackSource.of("/s/a.yaml").cli_args() == ["-f", "/s/a.yaml"]


def test_pinned_names_the_profiles_the_environment_enables() -> None:
    src = StackSource.of(["a.yaml", "b.yaml"], "demo", env={"COMPOSE_PROFILES": "debug, x"})
    pinned = src.pinned(["/s/a.yaml", "/s/b.yaml"])
    assert (pinned.paths, pinned.project, pinned.profiles) == (("/s/a.yaml", "/s/b.yaml"), "demo", ("debug", "x"))
    given = StackSource.of("a.yaml", "demo", ["only"], env={"COMPOSE_PROFILES": "debug"})
    assert given.pinned(["/s/a.yaml"]).profiles == ("only",)
    assert StackSource.of("a.yaml", env={}).pinned(["/s/a.yaml"]).profiles == ()


@pytest.mark.parametrize("command", [["up"], ["apply", "--json"]])
def test_the_runtime_cli_reads_back_what_cli_args_names(command: list[str]) -> None:
    # The harness starts and updates a device's runtime with these arguments after the command.
    from runtime import cli

    src = StackSource(("/s/a.yaml", "/s/b.yaml"), "demo", ("debug", "x"))
    args = cli.parse_args([command[0], *src.cli_args(), "--data-dir", "/data", *command[1:]])
    assert (args.files, args.project_name, args.profiles) == (["/s/a.yaml", "/s/b.yaml"], "demo", ["debug", "x"])
    assert cli._source(args) == src and cli._source(args) is cli._source(args)   # read once per command


def test_every_selection_is_a_cli_option_a_json_field_and_a_documented_variable() -> None:
    # The CLI, the JSON form and the help read the selections from StackSource's own table.
    from runtime import cli
    from runtime.compose import compat, loader

    for s in SELECTIONS:
        args = cli.parse_args([s.flag, "a", "validate", s.flag, "b"])
        args.settings = RuntimeSettings(environ={})
        assert cli._source(args).selected(s) == ("a", "b")
        assert StackSource.from_json({"paths": ["/a"], s.field: ["a"]}).selected(s) == ("a",)
        assert s.variable in cli.EPILOG
        assert ("service", s.field) in {(section, key) for section, key, _, _ in compat.rows()}
        assert s.field in loader.RESOLVED_FIRST
    with pytest.raises(TypeError, match="no selection named colour"):
        StackSource.of("a.yaml", colour=["red"])
