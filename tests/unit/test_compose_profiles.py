"""Profiles: which services are part of the stack (``--profile``, ``COMPOSE_PROFILES``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.compose import load_stack
from runtime.errors import ComposeError

pytestmark = pytest.mark.unit

STACK = """\
services:
  web:
    image: nginx
  debug:
    image: busybox
    profiles: [debug]
  tools:
    image: alpine
    profiles: [tools, debug]
"""


def _write(tmp_path: Path, text: str, name: str = "compose.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_services_of_disabled_profiles_are_not_part_of_the_stack(tmp_path: Path) -> None:
    stack = load_stack(_write(tmp_path, STACK), environ={}).stack
    assert stack.service_names == ("web",)


def test_profile_flag_enables_its_services(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK)
    assert load_stack(path, environ={}, profiles=["tools"]).stack.service_names == ("web", "tools")
    assert load_stack(path, environ={}, profiles=["debug"]).stack.service_names == ("web", "debug", "tools")
    assert load_stack(path, environ={}, profiles=["*"]).stack.service_names == ("web", "debug", "tools")


def test_compose_profiles_variable_when_no_flag(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK)
    assert load_stack(path, environ={"COMPOSE_PROFILES": "tools"}).stack.service_names == ("web", "tools")
    # The flag wins over the variable, as in docker compose.
    assert load_stack(path, environ={"COMPOSE_PROFILES": "tools"}, profiles=["debug"]).stack.service_names == (
        "web", "debug", "tools")


def test_compose_profiles_from_dotenv(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK)
    (tmp_path / ".env").write_text("COMPOSE_PROFILES=debug\n")
    assert load_stack(path, environ={}).stack.service_names == ("web", "debug", "tools")


def test_no_profiles_warning_any_more(tmp_path: Path) -> None:
    result = load_stack(_write(tmp_path, STACK), environ={}, profiles=["debug"])
    assert not [w for w in result.warnings if w.field == "profiles"]


def test_depending_on_a_disabled_service_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK + "  app:\n    image: app\n    depends_on: [web, debug]\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    (problem,) = info.value.problems
    assert (problem.file, problem.service, problem.field, problem.line) == (str(path), "app", "depends_on", 12)
    assert "'debug' is only in the profile(s) debug" in problem.message
    assert "--profile debug" in problem.message
    # Enabled, the same file is fine.
    assert "debug" in load_stack(path, environ={}, profiles=["debug"]).stack.service_names


def test_optional_dependency_on_a_disabled_service_is_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK + "  app:\n    image: app\n    depends_on:\n"
                  "      debug: {condition: service_started, required: false}\n"
                  "      web: {condition: service_started}\n")
    app = load_stack(path, environ={}).stack.service("app")
    assert [d.service for d in app.depends_on] == ["web"]


def test_volumes_from_and_network_mode_of_disabled_services_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK + "  a:\n    image: a\n    volumes_from: [debug]\n"
                  "  b:\n    image: b\n    network_mode: service:tools\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    assert [(p.service, p.field, p.line) for p in info.value.problems] == [
        ("a", "volumes_from", 12), ("b", "network_mode", 15)]


def test_ipc_and_pid_of_disabled_services_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK + "  a:\n    image: a\n    ipc: service:debug\n    pid: service:tools\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    assert [(p.service, p.field, p.line) for p in info.value.problems] == [("a", "ipc", 12), ("a", "pid", 13)]
    assert "shares the ipc namespace of 'debug' is only in the profile(s)" in info.value.problems[0].message


def test_a_disabled_service_may_depend_on_anything(tmp_path: Path) -> None:
    path = _write(tmp_path, STACK + "  extra:\n    image: x\n    profiles: [extra]\n    depends_on: [debug]\n")
    assert load_stack(path, environ={}).stack.service_names == ("web",)


def test_bad_profile_names_are_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, "services:\n  a:\n    image: a\n    profiles: [ok, '-bad']\n  b:\n    image: b\n"
                  "    profiles: debug\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    assert [(p.service, p.field, p.line) for p in info.value.problems] == [("a", "profiles", 4), ("b", "profiles", 7)]
