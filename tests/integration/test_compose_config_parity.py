"""The loader's merged services against ``docker-compose config`` (1.29) for the same files.

Only the binary is needed, no engine. 1.29 knows several ``-f`` files and ``extends`` with
``file:``; it does not filter profiles in ``config``, nor know include / !reset, so those are
covered by the unit tests only. Where 1.x and the current spec differ (1.x ``extends`` does
not inherit ``depends_on``; the current spec does, and so does armstack) the cases avoid it.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.compose import ServiceSpec, load_stack

pytestmark = pytest.mark.integration

COMPOSE = shutil.which("docker-compose")

CASES: dict[str, dict[str, str]] = {
    "override": {
        "a.yaml": """\
version: "3.8"
services:
  web:
    image: nginx:1.25
    command: ["nginx", "-g", "daemon off;"]
    environment: [A=1, B=2]
    labels: {team: web}
    ports: ["8080:80", "8443:443"]
    volumes: ["./html:/usr/share/nginx/html", "data:/data"]
    depends_on: [db]
  db:
    image: postgres:16
volumes:
  data: {}
""",
        "b.yaml": """\
version: "3.8"
services:
  web:
    image: nginx:1.27
    command: nginx-debug
    environment: {B: "20", C: "3"}
    labels: [tier=front]
    ports: ["8080:80", "9000:9000"]
    volumes: ["./other:/data"]
    depends_on: [cache]
  cache:
    image: redis:7
""",
    },
    "override_elsewhere": {
        "a.yaml": """\
version: "3.8"
services:
  app:
    image: app:1
    volumes: ["./data:/data", "logs:/logs"]
    environment: {LEVEL: info}
volumes:
  logs: {}
""",
        "b.yaml": """\
version: "3.8"
services:
  app:
    volumes: ["./device/data:/data", "./cfg:/etc/app:ro"]
    environment: [LEVEL=debug, EXTRA]
    ports: ["127.0.0.1:8080:80/udp"]
""",
    },
    "extends": {
        "a.yaml": """\
version: "2.4"
services:
  base:
    image: app:1
    environment: {A: "1", B: "2"}
    ports: ["80:80"]
  web:
    extends: {service: base}
    environment: {B: "20"}
    ports: ["443:443"]
  worker:
    extends: {file: common/base.yaml, service: job}
    command: work
""",
        "common/base.yaml": """\
version: "2.4"
services:
  job:
    image: job:2
    volumes: ["./conf:/etc/job:ro"]
    environment: [MODE=batch]
    labels: {kind: job}
""",
    },
}


def _theirs(directory: Path, files: list[str]) -> dict[str, Any]:
    assert COMPOSE is not None
    argv = [COMPOSE, "--project-directory", str(directory)]
    for name in files:
        argv += ["-f", str(directory / name)]
    done = subprocess.run([*argv, "config"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    services: dict[str, Any] = yaml.safe_load(done.stdout)["services"]
    return services


def _their_view(service: dict[str, Any]) -> dict[str, Any]:
    command = service.get("command")
    if isinstance(command, str):
        command = shlex.split(command)
    volumes = set()
    for v in service.get("volumes", []):
        if isinstance(v, str):
            parts = v.split(":")
            volumes.add((parts[0], parts[1]))
        else:
            volumes.add((v.get("source"), v["target"]))
    depends = service.get("depends_on", {})
    return {
        "image": service.get("image"),
        "command": tuple(command) if command is not None else None,
        # `KEY` with no value passes the variable through; unset (as here) it is left out.
        "environment": {k: str(v) for k, v in (service.get("environment") or {}).items() if v is not None},
        "labels": dict(service.get("labels") or {}),
        "ports": {_their_port(p) for p in service.get("ports", [])},
        "volumes": volumes,
        "depends_on": set(depends),
    }


def _their_port(port: Any) -> tuple[int, int]:
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    published, target = str(port).split("/")[0].split(":")[-2:]  # [ip:]published:target[/proto]
    return int(published), int(target)


def _our_view(spec: ServiceSpec) -> dict[str, Any]:
    return {
        "image": spec.image,
        "command": spec.command,
        "environment": dict(spec.environment),
        "labels": dict(spec.labels),
        "ports": {(p.published, p.target) for p in spec.ports},
        "volumes": {(m.source, m.target) for m in spec.volumes},
        "depends_on": {d.service for d in spec.depends_on},
    }


@pytest.mark.skipif(COMPOSE is None, reason="docker-compose (1.29) is not installed; apt-get install docker-compose")
@pytest.mark.parametrize("case", sorted(CASES))
def test_merged_services_match_docker_compose_config(case: str, tmp_path: Path) -> None:
    for name, text in CASES[case].items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    files = sorted(n for n in CASES[case] if "/" not in n)
    theirs = _theirs(tmp_path, files)
    ours = load_stack([tmp_path / n for n in files], environ={}).stack
    assert set(ours.service_names) == set(theirs)
    for name in ours.service_names:
        assert _our_view(ours.service(name)) == _their_view(theirs[name]), name
