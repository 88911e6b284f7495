"""Service keys docker compose maps onto the engine, checked with ``docker inspect`` on a real engine."""

from __future__ import annotations

import contextlib
import textwrap
from typing import Any

import pytest

from tests.integration.conftest import BASE_IMAGE, LOOP, TEST_LABEL, Stack

pytestmark = pytest.mark.integration


def _compose(stack: Stack, body: str) -> None:
    (stack.dir / "compose.yaml").write_text(f"name: {stack.project}\n" + textwrap.dedent(body))


def _engine_platform(stack: Stack) -> tuple[str, str]:
    version = stack.client.version()
    return version["Os"], version["Arch"]


def test_engine_keys_reach_the_container(stack: Stack) -> None:
    os_name, arch = _engine_platform(stack)
    (stack.dir / "media").mkdir()
    _compose(stack, f"""
        services:
          db:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='db')}"]
            container_name: {stack.project}-fixed-db
            platform: {os_name}/{arch}
            stop_grace_period: 2s
            expose: ["5432"]
            extra_hosts: ["printer.lan:10.0.0.9"]
            dns_search: [lan]
            dns_opt: [ndots:2]
            sysctls: {{net.core.somaxconn: "1024"}}
            ulimits:
              nofile: {{soft: 1024, hard: 2048}}
            shm_size: 32m
            init: true
            read_only: true
            tmpfs: /tmp
            security_opt: [no-new-privileges:true]
            tty: true
            stdin_open: true
            group_add: ["44"]
            pids_limit: 200
            cpu_shares: 512
            cpu_period: 100000
            cpu_quota: 50000
            mem_reservation: 16m
            mem_swappiness: 10
            oom_score_adj: 300
            domainname: example.lan
            stop_signal: SIGTERM
            dns: [10.0.0.53]
            mac_address: 02:42:ac:11:00:42
            devices: [/dev/null:/dev/mynull:r]
            device_cgroup_rules: ["c 1:3 r"]
            cgroup: private
            ipc: shareable
            runtime: runc
            cpuset: "0"
            mem_limit: 64m
            memswap_limit: 128m
            volumes:
              - type: tmpfs
                target: /scratch
                tmpfs: {{size: 8m, mode: "1770"}}
              - type: bind
                source: ./media
                target: /media
                bind: {{propagation: rprivate}}
              - type: volume
                source: data
                target: /data
                volume: {{nocopy: true}}
          web:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='web')}"]
            stop_grace_period: 2s
            links: ["db:database"]
        volumes:
          data: {{}}
        """)
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    found = stack.containers()
    db: dict[str, Any] = found["db"]
    assert db["Name"] == f"/{stack.project}-fixed-db"
    cfg, host = db["Config"], db["HostConfig"]
    assert "5432/tcp" in cfg["ExposedPorts"]
    assert (cfg["Tty"], cfg["OpenStdin"], cfg["Domainname"], cfg["StopSignal"]) == (True, True, "example.lan",
                                                                                      "SIGTERM")
    assert host["ExtraHosts"] == ["printer.lan:10.0.0.9"]
    assert (host["DnsSearch"], host["DnsOptions"]) == (["lan"], ["ndots:2"])
    assert host["Sysctls"] == {"net.core.somaxconn": "1024"}
    assert host["Ulimits"] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert (host["ShmSize"], host["Init"], host["ReadonlyRootfs"]) == (32 << 20, True, True)
    assert host["SecurityOpt"] == ["no-new-privileges:true"]
    assert host["GroupAdd"] == ["44"]
    assert (host["Dns"], host["CgroupnsMode"], host["IpcMode"], host["Runtime"]) == (
        ["10.0.0.53"], "private", "shareable", "runc")
    assert host["Devices"] == [{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "r"}]
    assert host["DeviceCgroupRules"] == ["c 1:3 r"]
    assert (host["CpusetCpus"], host["Memory"], host["MemorySwap"]) == ("0", 64 << 20, 128 << 20)
    assert cfg.get("MacAddress") == "02:42:ac:11:00:42" or db["NetworkSettings"]["Networks"][
        f"{stack.project}_default"]["MacAddress"] == "02:42:ac:11:00:42"
    assert (host["PidsLimit"], host["CpuShares"], host["CpuPeriod"], host["CpuQuota"]) == (200, 512, 100000, 50000)
    assert (host["MemoryReservation"], host["MemorySwappiness"], host["OomScoreAdj"]) == (16 << 20, 10, 300)
    mounts = {m["Target"]: m for m in host["Mounts"]}
    assert mounts["/scratch"]["TmpfsOptions"] == {"SizeBytes": 8 << 20, "Mode": 0o1770}
    assert mounts["/media"]["BindOptions"]["Propagation"] == "rprivate"
    assert mounts["/data"]["VolumeOptions"]["NoCopy"] is True
    assert mounts["/data"]["Source"] == f"{stack.project}_data"

    # The link is an alias of db's container that only web sees, on the stack network.
    web = found["web"]
    endpoint = web["NetworkSettings"]["Networks"][f"{stack.project}_default"]
    assert f"{stack.project}-fixed-db:database" in (endpoint.get("Links") or [])
    resolved = stack.client.containers.get(web["Id"]).exec_run(["getent", "hosts", "database"])
    assert resolved.exit_code == 0 and resolved.output.split()[0] == db["NetworkSettings"]["Networks"][
        f"{stack.project}_default"]["IPAddress"].encode()

    # Applying the same file again keeps every container (the hash of a key-rich spec is stable).
    again = stack.cli("plan", "--json")
    assert again.returncode == 0 and again.stdout.strip() == "[]", again.stdout


def test_a_container_name_held_by_another_container_is_refused(stack: Stack) -> None:
    name = f"{stack.project}-taken"
    other = stack.client.containers.create(BASE_IMAGE, ["true"], name=name, labels={TEST_LABEL.split("=")[0]: "1"})
    try:
        _compose(stack, f"""
            services:
              app:
                image: {BASE_IMAGE}
                command: ["sh", "-c", "{LOOP.format(name='app')}"]
                container_name: {name}
            """)
        applied = stack.cli("apply", "--timeout", "60")
        assert applied.returncode != 0
        assert f"The container name '{name}' of service 'app' (container_name) is already used by a container " \
               "this stack does not manage" in applied.stdout + applied.stderr
        assert stack.client.containers.get(name).id == other.id  # untouched
    finally:
        with contextlib.suppress(Exception):
            other.remove(force=True)


def test_a_platform_the_engine_cannot_run_is_refused(stack: Stack) -> None:
    os_name, arch = _engine_platform(stack)
    foreign = "arm64" if arch != "arm64" else "amd64"
    _compose(stack, f"""
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            platform: {os_name}/{foreign}
        """)
    applied = stack.cli("apply", "--timeout", "60")
    assert applied.returncode != 0
    assert f"does not match this device's engine ({os_name}/{arch})" in applied.stdout + applied.stderr
    assert stack.containers() == {}


def test_annotations_reach_the_container_or_an_old_engine_refuses_them(stack: Stack) -> None:
    api = stack.client.version()["ApiVersion"]
    _compose(stack, f"""
        services:
          app:
            image: {BASE_IMAGE}
            command: ["sh", "-c", "{LOOP.format(name='app')}"]
            stop_grace_period: 2s
            annotations: {{com.example.team: edge}}
        """)
    applied = stack.cli("apply", "--timeout", "60")
    if tuple(int(p) for p in api.split(".")) < (1, 43):
        assert applied.returncode != 0
        assert f"this engine (API {api}) would ignore: 'annotations' needs API 1.43" in applied.stdout + applied.stderr
    else:
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert stack.containers()["app"]["HostConfig"]["Annotations"] == {"com.example.team": "edge"}
