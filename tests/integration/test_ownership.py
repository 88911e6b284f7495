"""Ownership of networks and volumes against the native engine: two projects whose names collide.

Project ``<p>_db`` with volume ``data`` and network ``net`` and project ``<p>`` with volume
``db_data`` and network ``db_net`` both map to the engine names ``<p>_db_data`` / ``<p>_db_net``.
Project ``<p>`` must refuse them (never mount the other project's data) and its ``down -v``
must leave them alone.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BASE_IMAGE, LOOP, TEST_LABEL, Stack, _cleanup

docker = pytest.importorskip("docker")


def compose(project: str, volume: str, network: str, command: str) -> str:
    return (f"name: {project}\n"
            "services:\n"
            "  app:\n"
            f"    image: {BASE_IMAGE}\n"
            f"    command: [\"sh\", \"-c\", \"{command}\"]\n"
            "    stop_grace_period: 1s\n"
            f"    volumes: [\"{volume}:/data\"]\n"
            f"    networks: [{network}]\n"
            f"volumes:\n  {volume}:\n"
            f"networks:\n  {network}:\n")


@pytest.fixture
def other(stack: Stack, tmp_path: Path) -> Iterator[Stack]:
    """A second project, named ``<project>_db``, cleaned up like the first."""
    s = Stack(stack.client, f"{stack.project}_db", tmp_path / "other", tmp_path / "data", stack.env)
    s.dir.mkdir()
    try:
        yield s
    finally:
        _cleanup(stack.client, stack.project)   # a container of <p> may use <p>_db's volume
        _cleanup(stack.client, s.project)


def cli(s: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return s.cli(*args, timeout=90)


def test_a_colliding_project_is_refused_and_its_data_survives_down_v(stack: Stack, other: Stack, engine: Any) -> None:
    (other.dir / "compose.yaml").write_text(
        compose(other.project, "data", "net", "echo owner > /data/owner; " + LOOP.format(name="other")))
    res = cli(other, "apply", "--timeout", "60")
    assert res.returncode == 0, res.stderr
    name_v, name_n = f"{other.project}_data", f"{other.project}_net"
    assert name_v == f"{stack.project}_db_data" and name_n == f"{stack.project}_db_net"

    (stack.dir / "compose.yaml").write_text(
        compose(stack.project, "db_data", "db_net", "echo intruder > /data/owner; " + LOOP.format(name="app")))
    res = cli(stack, "apply", "--timeout", "30")
    assert res.returncode == 1
    assert f"belongs to project {other.project!r}" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    # Nothing of project <p> runs on the other project's volume.
    for c in engine.containers.list(all=True, filters={"label": f"io.armstack.stack={stack.project}"}):
        assert all(m.get("Name") != name_v for m in c.attrs.get("Mounts") or []), c.attrs["Mounts"]

    # The volume alone collides (the network is the stack's own): refused just the same.
    (stack.dir / "compose.yaml").write_text(
        compose(stack.project, "db_data", "own", "echo intruder > /data/owner; " + LOOP.format(name="app")))
    res = cli(stack, "apply", "--timeout", "30")
    assert res.returncode == 1
    assert f"The volume {name_v!r} already exists and belongs to project {other.project!r}" in res.stderr, res.stderr
    for c in engine.containers.list(all=True, filters={"label": f"io.armstack.stack={stack.project}"}):
        assert all(m.get("Name") != name_v for m in c.attrs.get("Mounts") or []), c.attrs["Mounts"]

    res = cli(stack, "down", "-v")
    assert engine.volumes.get(name_v).attrs["Labels"]["io.armstack.stack"] == other.project
    engine.networks.get(name_n)
    [owner] = engine.containers.list(filters={"label": f"io.armstack.stack={other.project}"})
    assert owner.status == "running"
    assert owner.exec_run(["cat", "/data/owner"]).output.decode().strip() == "owner"


def test_an_unlabelled_volume_is_used_with_a_warning_and_kept_by_down_v(stack: Stack, engine: Any) -> None:
    name = f"{stack.project}_db_data"
    vol = engine.volumes.create(name, labels={"io.armstack.test": "1"})   # by hand: no project label
    try:
        (stack.dir / "compose.yaml").write_text(
            compose(stack.project, "db_data", "db_net", LOOP.format(name="app")))
        res = cli(stack, "apply", "--timeout", "60")
        assert res.returncode == 0, res.stderr
        assert f"the volume {name!r} exists but was not created by armstack" in res.stderr, res.stderr
        res = cli(stack, "down", "-v")
        assert res.returncode == 0, res.stderr
        assert engine.volumes.get(name).name == name
        # The network the stack created carries our labels and went with `down`.
        with pytest.raises(docker.errors.NotFound):
            engine.networks.get(f"{stack.project}_db_net")
    finally:
        _cleanup(engine, stack.project)   # its containers first: a volume in use cannot go
        with contextlib.suppress(docker.errors.APIError):
            vol.remove(force=True)


def test_labels_written_in_the_file_cannot_claim_another_owner(stack: Stack, engine: Any) -> None:
    text = compose(stack.project, "data", "net", LOOP.format(name="app"))
    text = text.replace("volumes:\n  data:\n", "volumes:\n  data:\n    labels: {io.armstack.stack: someone}\n")
    text = text.replace("networks:\n  net:\n",
                        "networks:\n  net:\n    labels: {com.docker.compose.project: someone, team: a}\n")
    (stack.dir / "compose.yaml").write_text(text)
    res = cli(stack, "apply", "--timeout", "60")
    assert res.returncode == 0, res.stderr
    vol = engine.volumes.get(f"{stack.project}_data").attrs["Labels"]
    net = engine.networks.get(f"{stack.project}_net").attrs["Labels"]
    assert vol["io.armstack.stack"] == stack.project and vol["com.docker.compose.volume"] == "data"
    assert net["com.docker.compose.project"] == stack.project and net["team"] == "a"
    assert TEST_LABEL.split("=")[0] in vol
    res = cli(stack, "down", "-v")
    assert res.returncode == 0, res.stderr
    with pytest.raises(docker.errors.NotFound):
        engine.volumes.get(f"{stack.project}_data")
