"""``extends`` (same file and ``file:``) and ``include``, with problems named in the right file."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.compose import BuildSpec, Dependency, VolumeMount, load_stack
from runtime.errors import ComposeError

pytestmark = pytest.mark.unit


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_extends_in_the_same_file_inherits_everything_and_merges(tmp_path: Path) -> None:
    path = _write(tmp_path / "compose.yaml", """\
services:
  base:
    image: app:1
    environment: {A: "1", B: "2"}
    ports: ["80:80"]
    depends_on: [db]
  web:
    extends: base
    environment: {B: "20"}
    ports: ["443:443"]
  worker:
    extends: {service: web}
    command: work
  db:
    image: postgres
""")
    stack = load_stack(path, environ={}).stack
    web, worker = stack.service("web"), stack.service("worker")
    assert web.image == "app:1"
    assert dict(web.environment) == {"A": "1", "B": "20"}
    assert [p.target for p in web.ports] == [80, 443]
    assert web.depends_on == (Dependency("db"),)      # the current spec inherits depends_on
    assert (worker.image, worker.command, dict(worker.environment)) == ("app:1", ("work",), {"A": "1", "B": "20"})


def test_extends_from_another_file_rebases_its_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "common" / "app").mkdir(parents=True)
    _write(tmp_path / "common" / "base.yaml", """\
services:
  app:
    build: ./app
    volumes: ["./conf:/etc/app"]
    env_file: app.env
""")
    _write(tmp_path / "common" / "app.env", "FROM_FILE=1\n")
    path = _write(tmp_path / "compose.yaml", """\
services:
  web:
    extends:
      file: common/base.yaml
      service: app
    volumes: ["./data:/data"]
""")
    web = load_stack(path, environ={}).stack.service("web")
    assert web.build == BuildSpec(context=str(tmp_path / "common" / "app"))
    assert web.volumes == (VolumeMount("bind", "/etc/app", str(tmp_path / "common" / "conf")),
                           VolumeMount("bind", "/data", str(tmp_path / "data")))
    assert dict(web.environment) == {"FROM_FILE": "1"}


def test_reset_in_the_extending_service_drops_inherited_values(tmp_path: Path) -> None:
    path = _write(tmp_path / "compose.yaml", """\
services:
  base:
    image: app
    ports: ["80:80"]
  web:
    extends: base
    ports: !reset []
""")
    assert load_stack(path, environ={}).stack.service("web").ports == ()


def test_extends_errors_carry_file_service_field_and_line(tmp_path: Path) -> None:
    _write(tmp_path / "base.yaml", "services:\n  app:\n    image: app\n    mem_limit: lots\n")
    path = _write(tmp_path / "compose.yaml", """\
services:
  a:
    extends: {file: base.yaml, service: app}
  b:
    extends: nope
  c:
    extends: {file: missing.yaml, service: x}
""")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    found = [(Path(p.file).name, p.service, p.field, p.line) for p in info.value.problems]
    assert ("compose.yaml", "b", "extends", 5) in found
    assert ("compose.yaml", "c", "extends", 7) in found
    assert ("base.yaml", "a", "mem_limit", 4) in found   # the bad value is in base.yaml


def test_extends_loop_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "compose.yaml", "services:\n  a:\n    extends: b\n  b:\n    extends: a\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    assert any("loop" in p.message and p.field == "extends" for p in info.value.problems)


def test_include_brings_services_with_their_own_paths_and_env(tmp_path: Path) -> None:
    _write(tmp_path / "db" / "compose.yaml", """\
services:
  db:
    image: postgres:${PG:-15}
    volumes: ["./init:/docker-entrypoint-initdb.d"]
volumes:
  pgdata: {}
""")
    _write(tmp_path / "db" / ".env", "PG=16\n")
    path = _write(tmp_path / "compose.yaml", """\
include:
  - db/compose.yaml
services:
  web:
    image: nginx
    depends_on: [db]
    volumes: ["pgdata:/x"]
""")
    stack = load_stack(path, environ={}).stack
    assert stack.service_names == ("db", "web") or set(stack.service_names) == {"db", "web"}
    db = stack.service("db")
    assert db.image == "postgres:16"
    assert db.volumes == (VolumeMount("bind", "/docker-entrypoint-initdb.d", str(tmp_path / "db" / "init")),)
    assert "pgdata" in [v.name for v in stack.volumes]


def test_include_local_definition_is_merged_over_the_included_one(tmp_path: Path) -> None:
    _write(tmp_path / "inc.yaml", "services:\n  db:\n    image: postgres\n    user: postgres\n")
    path = _write(tmp_path / "compose.yaml", "include: [inc.yaml]\nservices:\n  db:\n    user: root\n")
    result = load_stack(path, environ={})
    db = result.stack.service("db")
    assert (db.image, db.user) == ("postgres", "root")
    assert [(w.service, w.line) for w in result.warnings] == [("db", 3)]


def test_include_errors_name_the_included_file(tmp_path: Path) -> None:
    inc = _write(tmp_path / "inc" / "compose.yaml", "services:\n  db:\n    image: postgres\n    cpus: many\n")
    path = _write(tmp_path / "compose.yaml", "include: [inc/compose.yaml, nothere.yaml]\nservices:\n  a:\n"
                  "    image: a\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    found = [(p.file, p.service, p.field, p.line) for p in info.value.problems]
    assert (str(inc), "db", "cpus", 4) in found
    assert (str(path), None, "include", 1) in found


def test_include_loop_is_an_error(tmp_path: Path) -> None:
    _write(tmp_path / "b.yaml", "include: [compose.yaml]\nservices:\n  b:\n    image: b\n")
    path = _write(tmp_path / "compose.yaml", "include: [b.yaml]\nservices:\n  a:\n    image: a\n")
    with pytest.raises(ComposeError) as info:
        load_stack(path, environ={})
    assert any("loop" in p.message for p in info.value.problems)


def test_a_very_long_extends_chain_is_a_problem_not_a_traceback(tmp_path: Path) -> None:
    lines = ["services:"] + [f"  s{i}:\n    extends: s{i + 1}" for i in range(2000)] + ["  s2000:\n    image: x"]
    path = _write(tmp_path / "compose.yaml", "\n".join(lines) + "\n")
    try:
        stack = load_stack(path, environ={}).stack
    except ComposeError as exc:
        assert "too deeply" in str(exc)
    else:
        assert stack.service("s0").image == "x"
