"""Several compose files merged with compose's rules (``-f a -f b``), and ``!reset`` / ``!override``."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.compose import Dependency, PortSpec, VolumeMount, load_stack
from runtime.errors import ComposeError

pytestmark = pytest.mark.unit

BASE = """\
name: shop
services:
  web:
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    environment:
      - A=1
      - B=2
    labels: {team: web}
    ports: ["8080:80", "8443:443"]
    volumes:
      - ./html:/usr/share/nginx/html
      - data:/data
    depends_on: [db]
  db:
    image: postgres:16
volumes:
  data: {}
"""

OVERRIDE = """\
services:
  web:
    image: nginx:1.27
    command: nginx-debug
    environment:
      B: "20"
      C: "3"
    labels: [tier=front]
    ports: ["8080:80", "9000:9000"]
    volumes:
      - ./other:/data
    depends_on:
      cache: {condition: service_healthy}
  cache:
    image: redis:7
"""


def _files(tmp_path: Path, *texts: str) -> list[Path]:
    paths = []
    for index, text in enumerate(texts):
        path = tmp_path / f"f{index}.yaml"
        path.write_text(text)
        paths.append(path)
    return paths


def test_two_files_merge_with_compose_rules(tmp_path: Path) -> None:
    stack = load_stack(_files(tmp_path, BASE, OVERRIDE), environ={}).stack
    assert stack.project == "shop"
    assert stack.service_names == ("web", "db", "cache")
    web = stack.service("web")
    assert web.image == "nginx:1.27"                     # scalars: the later file wins
    assert web.command == ("nginx-debug",)               # command: replaced whole
    assert dict(web.environment) == {"A": "1", "B": "20", "C": "3"}  # by name, list and mapping alike
    assert dict(web.labels) == {"team": "web", "tier": "front"}
    assert web.ports == (PortSpec(80, 8080), PortSpec(443, 8443), PortSpec(9000, 9000))  # appended, unique
    assert web.volumes == (                              # by container path; relative to the first file
        VolumeMount("bind", "/usr/share/nginx/html", str(tmp_path / "html")),
        VolumeMount("bind", "/data", str(tmp_path / "other")),
    )
    assert web.depends_on == (Dependency("db"), Dependency("cache", "service_healthy"))


def test_later_file_may_add_to_a_service_without_image(tmp_path: Path) -> None:
    stack = load_stack(_files(tmp_path, "services:\n  a:\n    image: x\n", "services:\n  a:\n    user: '1000'\n"),
                       environ={}).stack
    assert (stack.service("a").image, stack.service("a").user) == ("x", "1000")


def test_build_string_merges_with_build_mapping(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    stack = load_stack(_files(tmp_path, "services:\n  a:\n    build: ./app\n",
                              "services:\n  a:\n    build:\n      target: prod\n      args: [X=1]\n"),
                       environ={}).stack
    build = stack.service("a").build
    assert build is not None
    assert (build.context, build.target, build.args) == (str(tmp_path / "app"), "prod", (("X", "1"),))


def test_reset_removes_and_override_replaces(tmp_path: Path) -> None:
    second = """\
services:
  web:
    ports: !reset []
    environment: !override
      ONLY: "1"
    volumes: !override
      - data:/data
    depends_on: !reset null
"""
    web = load_stack(_files(tmp_path, BASE, second), environ={}).stack.service("web")
    assert web.ports == ()
    assert dict(web.environment) == {"ONLY": "1"}
    assert web.volumes == (VolumeMount("volume", "/data", "data"),)
    assert web.depends_on == ()


def test_reset_of_a_whole_service_key_in_the_later_file(tmp_path: Path) -> None:
    second = "services:\n  web:\n    command: !reset null\n    labels: !reset {}\n"
    web = load_stack(_files(tmp_path, BASE, second), environ={}).stack.service("web")
    assert web.command is None and web.labels == ()


def test_error_in_the_second_file_names_that_file_and_line(tmp_path: Path) -> None:
    paths = _files(tmp_path, BASE, "services:\n  web:\n    ports:\n      - '80:80:80:80'\n    mem_limit: lots\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    assert [(p.file, p.service, p.field, p.line) for p in info.value.problems] == [
        (str(paths[1]), "web", "ports", 4), (str(paths[1]), "web", "mem_limit", 5)]


def test_error_in_the_first_file_still_names_the_first_file(tmp_path: Path) -> None:
    paths = _files(tmp_path, "services:\n  web:\n    image: x\n    cpus: many\n", "services:\n  web:\n    user: a\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    assert [(p.file, p.field, p.line) for p in info.value.problems] == [(str(paths[0]), "cpus", 4)]


def test_interpolation_and_yaml_errors_name_their_file(tmp_path: Path) -> None:
    paths = _files(tmp_path, BASE, "services:\n  web:\n    image: ${TAG:?set TAG}\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    assert [(p.file, p.service, p.field, p.line) for p in info.value.problems] == [(str(paths[1]), "web", "image", 3)]
    paths = _files(tmp_path, BASE, "services:\n  web: [\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    assert info.value.problems[0].file == str(paths[1])


def test_a_list_over_a_mapping_is_an_error_in_the_later_file(tmp_path: Path) -> None:
    paths = _files(tmp_path, "services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n",
                   "services:\n  a:\n    healthcheck: [nope]\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    problem = info.value.problems[0]
    assert (problem.file, problem.field, problem.line) == (str(paths[1]), "healthcheck", 3)
    assert "!override" in problem.message


def test_dotenv_and_project_directory_are_the_first_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".env").write_text("TAG=7\n")
    first = tmp_path / "compose.yaml"
    first.write_text("services:\n  a:\n    image: x\n")
    second = tmp_path / "sub" / "override.yaml"
    second.write_text("services:\n  a:\n    image: redis:${TAG}\n    volumes: ['./d:/d']\n")
    stack = load_stack([first, second], environ={}).stack
    assert stack.project == tmp_path.name.lower() or stack.project
    assert stack.service("a").image == "redis:7"
    assert stack.service("a").volumes == (VolumeMount("bind", "/d", str(tmp_path / "d")),)


def test_a_single_value_over_a_mapping_names_the_later_file(tmp_path: Path) -> None:
    paths = _files(tmp_path, "services:\n  a:\n    image: x\n    healthcheck:\n      test: [CMD, 'true']\n",
                   "services:\n  a:\n\n    healthcheck: none\n")
    with pytest.raises(ComposeError) as info:
        load_stack(paths, environ={})
    problem = info.value.problems[0]
    assert (problem.file, problem.service, problem.field, problem.line) == (str(paths[1]), "a", "healthcheck", 4)
    assert "cannot merge" in problem.message
