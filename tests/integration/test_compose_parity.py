"""Compose parity: every corpus file, created by docker-compose 1.29 and by the runtime, inspects the same.

The corpus is ``tests/integration/parity/<name>/docker-compose.yml`` (each file says in its leading
comment what it exercises). Per file, both tools create the stack on the same engine under their
own project names: docker-compose 1.29 (Debian's ``docker-compose``) with ``up -d``, the runtime
with ``apply`` (it has no create-only mode; and 1.29's ``up --no-start`` joins only the first
network and cannot resolve ``network_mode: service:X``, so both sides start their containers).
``docker inspect`` of every container, network and volume of each project is normalised
(:mod:`tests.integration.composeparity`) and compared field by field: Config, HostConfig, the
mounts, network endpoints (aliases, static IPs, links), networks (Internal, IPAM, options, labels)
and volumes (driver, options, labels). Any difference fails the file.

Left out of the comparison because they differ per object or per run: ids, names derived from the
project name (compared with the project replaced), times, state, engine-assigned addresses, MACs
and subnets, hostnames defaulted to the container id, the image's own environment, an unset
``StopTimeout`` (the engine's 10 s, which the runtime writes out), and the spelling of the same
request (``Binds`` vs ``Mounts`` vs ``Tmpfs``, ``:rw`` suffixes, 1.29's ``Config.Volumes`` for
every mount target, 1.29 making every network attachable unasked, 1.29 labelling a ``name:``-d
network with that name).

Different by design (not compared):

* the tools' bookkeeping labels: the runtime's ``io.armstack.*``, 1.29's
  ``com.docker.compose.{config-hash,version,project.working_dir,project.config_files,...}``;
* ``HostConfig.RestartPolicy``: the supervisor restarts services, the engine must not race it;
* the json-file rotation default ``max-size=10m, max-file=3`` the runtime adds (other log
  options and drivers are compared);
* ``Config.Image``: the runtime creates from the resolved image id (compared as the image id).

A file with a ``spec-result.yml`` uses a key 1.29 predates: only the runtime side runs, and the
fields that file names must equal the result the Compose Specification documents.

Files that do not match yet are listed in ``XFAIL`` with the fields that differ (strict: a file
that starts to match fails until its entry is removed). To see the differences of every file::

    python -m tests.integration.parity_report [name ...]

or ``pytest tests/integration/test_compose_parity.py -k <name> --runxfail``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.composeparity import Case, compare, corpus, image_env, tagged_images

pytestmark = pytest.mark.integration

CASES = corpus()


class Mismatch(AssertionError):
    """The two sides differ (as opposed to a tool failing outright)."""


# Files that do not match today -> the fields that differ. Remove an entry once its file matches.
XFAIL: dict[str, str] = {
    # By design: among networks of equal priority the runtime creates the container on the first
    # by key name, as compose v2 does (compose-go NetworksByPriority); 1.29 sorted engine names.
    'network-external': 'HostConfig.NetworkMode (equal priorities: ordered by key, as compose v2)',
}

# Every key of the compose-fidelity issue, as it appears in the corpus (service, network, volume,
# service-network or mount keys); test_corpus_covers_every_key keeps the corpus honest.
ISSUE_KEYS = frozenset({
    "container_name", "expose", "links", "extra_hosts", "dns", "dns_search", "dns_opt", "sysctls",
    "ulimits", "shm_size", "init", "read_only", "security_opt", "tty", "stdin_open", "pid", "ipc",
    "group_add", "pids_limit", "cpu_shares", "cpu_quota", "cpu_period", "cpuset", "mem_reservation",
    "memswap_limit", "mem_swappiness", "oom_score_adj", "device_cgroup_rules", "cgroup_parent",
    "mac_address", "domainname", "stop_signal", "propagation", "nocopy", "size", "ipam", "subnet",
    "gateway", "ip_range", "internal", "attachable", "driver_opts", "labels", "name", "external",
    "aliases", "ipv4_address", "priority", "environment", "env_file", "ports", "volumes", "command",
    "entrypoint", "user", "working_dir", "hostname", "cap_add", "cap_drop", "devices", "privileged",
    "mem_limit", "cpus", "healthcheck", "depends_on", "network_mode", "volumes_from", "logging",
})


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {str(k) for k in node} | {k for v in node.values() for k in _keys(v)}
    if isinstance(node, list):
        return {k for v in node for k in _keys(v)}
    return set()


def test_corpus_covers_every_key() -> None:
    assert len(CASES) >= 30
    seen: set[str] = set()
    for case in CASES:
        assert case.header(), f"{case.file} does not start with a comment saying what it exercises"
        seen |= _keys(case.declared())
    assert not ISSUE_KEYS - seen, f"keys no corpus file uses: {sorted(ISSUE_KEYS - seen)}"
    assert not set(XFAIL) - {c.name for c in CASES}, "XFAIL names a file that is not in the corpus"


@pytest.fixture(scope="module")
def images(engine: Any) -> Iterator[dict[str, list[str]]]:
    """The test base image tagged under every image name the corpus uses (no registry)."""
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose (1.29) is not installed; scripts/setup.sh installs it")
    with tagged_images(CASES):
        yield image_env()


def _param(case: Case) -> Any:
    marks = [pytest.mark.xfail(strict=True, raises=Mismatch, reason=XFAIL[case.name])] if case.name in XFAIL else []
    return pytest.param(case, id=case.name, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_compose_parity(case: Case, images: dict[str, list[str]]) -> None:
    result = compare(case, images)
    if result.differences:
        raise Mismatch(f"{case.name} ({case.header()}) differs from docker-compose 1.29 in "
                       f"{len(result.differences)} field(s):\n  " + "\n  ".join(result.differences))
