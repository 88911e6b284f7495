"""Secrets and configs without swarm: sources, service mounts, create parameters and the hash."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from runtime.compose import load_stack
from runtime.compose.model import FileMount, StackSpec
from runtime.containerspec import create_params, files_archive
from runtime.errors import ComposeError
from runtime.hashing import config_hash

pytestmark = pytest.mark.unit

FILE = """\
services:
  api:
    image: x
    secrets:
      - token
      - source: db_password
        target: db
        uid: "1000"
        mode: 0400
    configs:
      - source: settings
        target: /etc/app.conf
      - banner
secrets:
  token:
    file: ./token.txt
  db_password:
    environment: DB_PASSWORD
configs:
  settings:
    content: |
      level=debug
  banner:
    file: ./banner.txt
"""


def load(tmp_path: Path, text: str = FILE, environ: dict[str, str] | None = None) -> StackSpec:
    (tmp_path / "token.txt").write_text("s3cr3t\n")
    (tmp_path / "banner.txt").write_text("hello\n")
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return load_stack(path, environ={"DB_PASSWORD": "hunter2"} if environ is None else environ).stack


def test_sources_and_mounts_as_compose_reads_them(tmp_path: Path) -> None:
    st = load(tmp_path)
    api = st.service("api")
    assert api.secrets == (FileMount("token", "/run/secrets/token"),
                           FileMount("db_password", "/run/secrets/db", uid="1000", mode=0o400))
    assert api.configs == (FileMount("settings", "/etc/app.conf"), FileMount("banner", "/banner"))
    assert st.file_object("secret", "token").file == str(tmp_path / "token.txt")
    assert st.file_object("secret", "db_password").content == b"hunter2"
    assert st.file_object("config", "settings").content == b"level=debug\n"


def test_values_never_show_in_a_repr(tmp_path: Path) -> None:
    st = load(tmp_path)
    assert "hunter2" not in repr(st) and "level=debug" not in repr(st)
    assert "hunter2" not in repr(create_params(st, "api", "sha256:img", "h"))


def test_a_file_source_is_bind_mounted_read_only_and_content_is_copied(tmp_path: Path) -> None:
    st = load(tmp_path)
    p = create_params(st, "api", "sha256:img", "h")
    assert f"{tmp_path / 'token.txt'}:/run/secrets/token:ro" in p.host["binds"]
    assert f"{tmp_path / 'banner.txt'}:/banner:ro" in p.host["binds"]
    copies = {c.target: c for c in p.files}
    assert set(copies) == {"/run/secrets/db", "/etc/app.conf"}
    assert (copies["/run/secrets/db"].content, copies["/run/secrets/db"].uid, copies["/run/secrets/db"].mode) == (
        b"hunter2", 1000, 0o400)
    assert copies["/etc/app.conf"].mode == 0o444    # compose's default: read-only for everyone


def test_the_archive_holds_each_copy_with_its_owner_mode_and_directories() -> None:
    from runtime.containerspec import FileCopy

    data = files_archive([(FileCopy("/run/secrets/db", b"x", uid=1000, gid=5, mode=0o400), b"x"),
                          (FileCopy("/etc/app.conf", b"y"), b"y")])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert set(members) == {"run", "run/secrets", "run/secrets/db", "etc", "etc/app.conf"}
        db = members["run/secrets/db"]
        assert (db.uid, db.gid, db.mode, db.isfile()) == (1000, 5, 0o400, True)
        assert members["run/secrets"].isdir() and members["etc/app.conf"].mode == 0o444
        handle = tar.extractfile("etc/app.conf")
        assert handle is not None and handle.read() == b"y"


def test_a_changed_value_recreates_the_service_and_its_digest_not_its_value_is_hashed(tmp_path: Path) -> None:
    before = config_hash(load(tmp_path), "api", "sha256:img", {})
    after = config_hash(load(tmp_path, environ={"DB_PASSWORD": "changed"}), "api", "sha256:img", {})
    assert before != after


def test_a_service_without_secrets_keeps_its_hash(tmp_path: Path) -> None:
    plain = "services:\n  api:\n    image: x\n"
    with_unused = plain + "secrets:\n  token:\n    file: ./token.txt\n"
    unused = config_hash(load(tmp_path, with_unused), "api", "i", {})
    assert config_hash(load(tmp_path, plain), "api", "i", {}) == unused


@pytest.mark.parametrize(("text", "field", "message"), [
    ("services:\n  a:\n    image: x\n    secrets: [nope]\n", "secrets", "the secret 'nope' is not declared"),
    ("services:\n  a:\n    image: x\nsecrets:\n  s:\n    external: true\n", "secrets.s.external", "swarm"),
    ("services:\n  a:\n    image: x\nsecrets:\n  s: {}\n", "secrets.s", "exactly one source"),
    ("services:\n  a:\n    image: x\nsecrets:\n  s:\n    file: ./missing\n", "secrets.s.file", "does not exist"),
    ("services:\n  a:\n    image: x\nconfigs:\n  c:\n    environment: UNSET_VAR\n", "configs.c.environment",
     "UNSET_VAR that the config reads is not set"),
    ("services:\n  a:\n    image: x\n    secrets: [{source: s, mode: '999'}]\nsecrets:\n  s: {content: x}\n",
     "secrets", "octal"),
    ("services:\n  a:\n    image: x\n    secrets: [{source: s, target: t}, {source: s, target: /run/secrets/t}]\n"
     "secrets:\n  s: {content: x}\n", "secrets", "two secrets are mounted at /run/secrets/t"),
])
def test_bad_secrets_and_configs_say_what_and_where(tmp_path: Path, text: str, field: str, message: str) -> None:
    with pytest.raises(ComposeError) as err:
        load(tmp_path, text, environ={})
    [problem] = err.value.problems
    assert problem.field == field and message in problem.message and problem.line is not None
    assert "hunter2" not in str(err.value)
