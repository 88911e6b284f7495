"""Loading whole files: the three format generations, file discovery, project names, YAML features."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from runtime.compose import (
    BuildSpec,
    Dependency,
    Healthcheck,
    LoadResult,
    LoggingSpec,
    NetworkSpec,
    PortSpec,
    RestartPolicy,
    VolumeMount,
    VolumesFrom,
    VolumeSpec,
    load_stack,
    load_text,
)
from runtime.errors import ComposeError

FIXTURES = Path(__file__).parent / "fixtures" / "compose"


def test_v2_torrent_stack() -> None:
    result = load_stack(FIXTURES / "torrent", environ={"TZ": "Europe/Paris"})
    stack = result.stack
    root = str(FIXTURES / "torrent")
    assert stack.project == "torrent"
    assert stack.source == f"{root}/docker-compose.yml" and stack.workdir == root
    assert stack.service_names == ("transmission", "fileserver")
    t = stack.service("transmission")
    assert t.build == BuildSpec(context=f"{root}/transmission")
    assert t.restart == RestartPolicy("always")
    assert t.ports == (PortSpec(9091, 9091), PortSpec(51413, 51413), PortSpec(51413, 51413, "udp"))
    assert t.volumes == (
        VolumeMount("volume", "/downloads", "downloads"),
        VolumeMount("bind", "/config", f"{root}/config"),
    )
    assert t.environment == (("PUID", "1000"), ("TZ", "Europe/Paris"))
    assert t.healthcheck == Healthcheck(("CMD", "wget", "-q", "--spider", "http://localhost:9091"), 90.0, 10.0, 5, 30.0)
    assert t.labels == (("io.example.role", "downloader"),)
    assert t.mem_limit == 256 * 1024**2
    assert t.networks == ("default",)
    f = stack.service("fileserver")
    assert f.build == BuildSpec(f"{root}/fileserver", "Dockerfile.arm", (("BASE", "alpine:3.19"),))
    assert f.volumes_from == (VolumesFrom("transmission", read_only=True),)
    assert f.depends_on == (Dependency("transmission"),)
    assert f.restart == RestartPolicy("unless-stopped")
    assert f.stop_grace_period == 30.0
    assert stack.volumes == (VolumeSpec("downloads"),)
    assert stack.networks == (NetworkSpec("default"),)
    assert stack.image_ref("fileserver") == "torrent-fileserver"
    assert result.warnings == ()


def test_v3_stack_with_long_syntax_and_extensions() -> None:
    result = load_stack(FIXTURES / "v3.yml", project="Prod", environ={})
    stack = result.stack
    assert stack.project == "prod"
    api = stack.service("api")
    assert api.image == "registry.example.com/api:latest"
    assert api.command == ("python", "-m", "api", "--port", "8000")
    assert api.ports == (PortSpec(8000, 8000, "tcp"),)
    assert api.networks == ("backend", "frontend")
    assert api.depends_on == (Dependency("db", "service_healthy"),)
    assert api.logging == LoggingSpec("json-file", (("max-file", "3"), ("max-size", "10m")))
    assert api.mem_limit == 128 * 1024**2 and api.cpus == 0.5
    db = stack.service("db")
    assert db.volumes == (VolumeMount("volume", "/var/lib/postgresql/data", "pgdata"), VolumeMount("tmpfs", "/run"))
    assert db.healthcheck == Healthcheck(("CMD-SHELL", "pg_isready -U postgres"), interval=5.0)
    assert stack.volumes == (VolumeSpec("pgdata", external=True, external_name="shared_pgdata"),)
    assert stack.volume_name("pgdata") == "shared_pgdata"
    assert stack.networks == (
        NetworkSpec("backend", driver="bridge"),
        NetworkSpec("frontend", external=True, external_name="proxy_net"),
    )
    assert stack.network_name("backend") == "prod_backend"
    assert stack.network_name("frontend") == "proxy_net"
    [warning] = result.warnings
    assert warning.service == "api" and warning.field == "deploy.restart_policy" and warning.line == 21
    assert "use the service's 'restart:'" in warning.message


def test_unversioned_file_with_name() -> None:
    stack = load_stack(FIXTURES / "unversioned.yaml", environ={}).stack
    assert stack.project == "my_stack"
    app = stack.service("app")
    assert app.entrypoint == ("/bin/sh", "-c")
    assert app.command == ("echo", "hello world", "&&", "sleep", "1")
    assert app.network_mode == "host" and app.networks == ()
    assert app.privileged is True
    assert app.devices == ("/dev/ttyUSB0:/dev/ttyUSB0",)
    assert (app.cap_add, app.cap_drop, app.tmpfs) == (("NET_ADMIN",), ("ALL",), ("/tmp",))
    assert (app.user, app.working_dir, app.hostname, app.stop_signal) == ("1000:1000", "/app", "app-host", "SIGINT")
    assert app.cpus == 1.5
    sidecar = stack.service("sidecar")
    assert sidecar.network_service == "app"
    assert sidecar.restart == RestartPolicy("on-failure", 3)
    assert stack.networks == ()


@pytest.mark.parametrize("name", ["compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml"])
def test_directory_lookup(tmp_path: Path, name: str) -> None:
    (tmp_path / name).write_text("services:\n  a:\n    image: x\n")
    assert load_stack(tmp_path, environ={}).stack.source == str(tmp_path / name)


def test_directory_lookup_prefers_compose_yaml(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", "compose.yaml"):
        (tmp_path / name).write_text("services:\n  a:\n    image: x\n")
    assert load_stack(str(tmp_path), environ={}).stack.source.endswith("/compose.yaml")


def test_missing_file_or_directory_without_compose_file(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no compose file in this directory; expected one of compose.yaml"):
        load_stack(tmp_path)
    with pytest.raises(ComposeError, match="does not exist"):
        load_stack(tmp_path / "nope.yml")


@pytest.mark.parametrize(
    ("project", "name", "directory", "expected"),
    [
        ("Given", "ignored", "dir", "given"),
        (None, "From-Name", "dir", "from-name"),
        (None, None, "My Dir.v2", "mydirv2"),
        (None, "__x__", "dir", "x__"),
        (None, "${STACK:-envname}", "dir", "envname"),
    ],
)
def test_project_name(tmp_path: Path, project: str | None, name: str | None, directory: str, expected: str) -> None:
    where = tmp_path / directory
    where.mkdir()
    text = (f"name: {name}\n" if name else "") + "services:\n  a:\n    image: x\n"
    (where / "compose.yaml").write_text(text)
    assert load_stack(where, project=project, environ={}).stack.project == expected


def test_project_name_without_letters_or_digits(tmp_path: Path) -> None:
    with pytest.raises(ComposeError, match="no letters or digits"):
        load_text("name: '--'\nservices:\n  a:\n    image: x\n", workdir=tmp_path, environ={})


def test_anchors_and_merge_keys(tmp_path: Path) -> None:
    text = """
x-common: &common
  image: base:1
  restart: always
  environment: &env
    A: "1"
    B: "2"
services:
  one:
    <<: *common
  two:
    <<: *common
    image: other:2
    environment:
      <<: *env
      B: overridden
"""
    result = load_text(text, workdir=tmp_path, environ={})
    one, two = result.stack.services
    assert (one.image, one.restart.mode, one.environment) == ("base:1", "always", (("A", "1"), ("B", "2")))
    assert (two.image, two.environment) == ("other:2", (("A", "1"), ("B", "overridden")))
    assert result.warnings == ()


def test_extension_fields_are_ignored_everywhere(tmp_path: Path) -> None:
    text = """
x-top: {anything: [1, 2]}
services:
  web:
    image: x
    x-notes: whatever ${NOT_SET:?not needed}
    build:
      context: .
      x-build-note: fine
volumes:
  x-vol-note: 1
  data:
"""
    result = load_text(text, workdir=tmp_path, environ={})
    assert result.warnings == ()
    assert result.stack.volumes == (VolumeSpec("data"),)


def test_result_is_frozen_and_comparable(tmp_path: Path) -> None:
    text = "services:\n  a:\n    image: x\n    labels: [b=2, a=1]\n    environment: {Z: 1, A: 2}\n"
    first = load_text(text, workdir=tmp_path, environ={})
    second = load_text(text, workdir=tmp_path, environ={})
    assert isinstance(first, LoadResult) and first == second and hash(first.stack) == hash(second.stack)
    assert first.stack.service("a").labels == (("a", "1"), ("b", "2"))
    assert first.stack.service("a").environment == (("A", "2"), ("Z", "1"))


def test_copied_fixture_keeps_relative_paths_relative_to_the_file(tmp_path: Path) -> None:
    shutil.copytree(FIXTURES / "torrent", tmp_path / "copy")
    stack = load_stack(tmp_path / "copy" / "docker-compose.yml", environ={"TZ": "UTC"}).stack
    assert stack.service("transmission").volumes[1].source == str(tmp_path / "copy" / "config")
    assert stack.project == "copy"
