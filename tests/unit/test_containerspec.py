"""ServiceSpec -> engine create parameters."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime import labels as L
from runtime.compose import load_text
from runtime.compose.model import (
    DeviceRequest,
    Healthcheck,
    LoggingSpec,
    PortSpec,
    ServiceSpec,
    StackSpec,
    VolumeMount,
    VolumesFrom,
)
from runtime.containerspec import (
    api_too_old,
    create_params,
    dependencies_of,
    extra_labels,
    name_conflict,
    platform_mismatch,
)


def _stack(*services: ServiceSpec) -> StackSpec:
    return StackSpec(project="demo", services=services)


def test_names_labels_and_restart_policy() -> None:
    s = _stack(ServiceSpec("web", image="x", labels=(("team", "a"), (L.STACK, "hijack"))))
    p = create_params(s, "web", "sha256:img", "h1", release="r7", extra={"io.armstack.test": "1"})
    assert p.name == "demo-web-1" and p.image == "sha256:img"
    lab = p.container["labels"]
    assert lab[L.STACK] == "demo" and lab[L.SERVICE] == "web" and lab[L.CONFIG_HASH] == "h1"
    assert lab[L.RELEASE] == "r7" and lab[L.COMPOSE_NUMBER] == "1" and lab[L.COMPOSE_ONEOFF] == "False"
    assert lab["team"] == "a" and lab["io.armstack.test"] == "1"
    assert p.host["restart_policy"] == {"Name": "no"}
    assert p.host["log_config"] == {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}}
    assert p.first_network == "demo_default" and p.aliases == ("web",)


def test_healthcheck_in_nanoseconds_and_limits() -> None:
    s = _stack(ServiceSpec("db", image="x", healthcheck=Healthcheck(("CMD", "true"), 1.5, 2.0, 4, 0.5),
                           mem_limit=64 << 20, cpus=0.5, logging=LoggingSpec("local", (("max-size", "1m"),)),
                           stop_grace_period=3.0, stop_signal="SIGINT"))
    p = create_params(s, "db", "i", "h")
    assert p.container["healthcheck"] == {"test": ["CMD", "true"], "interval": 1_500_000_000,
                                          "timeout": 2_000_000_000, "retries": 4, "start_period": 500_000_000}
    assert p.host["mem_limit"] == 64 << 20 and p.host["nano_cpus"] == 500_000_000
    assert p.host["log_config"] == {"type": "local", "config": {"max-size": "1m"}}
    assert p.container["stop_timeout"] == 3 and p.container["stop_signal"] == "SIGINT"


def test_mounts_ports_and_joined_services() -> None:
    app = ServiceSpec(
        "app", image="x",
        volumes=(VolumeMount("volume", "/data", "data"), VolumeMount("bind", "/cfg", "/etc/app", True),
                 VolumeMount("tmpfs", "/run")),
        ports=(PortSpec(80, 8080), PortSpec(53, None, "udp")),
    )
    side = ServiceSpec("side", image="x", network_mode="service:app", volumes_from=(VolumesFrom("app", True),))
    s = _stack(app, side)
    p = create_params(s, "app", "i", "h")
    assert p.host["binds"] == ["demo_data:/data:rw", "/etc/app:/cfg:ro"]
    assert p.host["tmpfs"] == {"/run": ""}
    assert p.container["ports"] == [(80, "tcp"), (53, "udp")]
    assert p.host["port_bindings"] == {"80/tcp": ["8080"], "53/udp": [None]}
    q = create_params(s, "side", "i", "h", attached={"app": "abc123"})
    assert q.host["network_mode"] == "container:abc123"
    assert q.host["volumes_from"] == ["abc123:ro"]
    assert q.first_network is None and "ports" not in q.container


def test_extra_labels_from_environment() -> None:
    assert extra_labels({"ARMSTACK_EXTRA_LABELS": "a=1, b=2,,c"}) == {"a": "1", "b": "2", "c": ""}
    assert extra_labels({}) == {}


def test_engine_keys_map_to_the_fields_compose_uses(tmp_path: Path) -> None:
    from tests.unit.test_compose_services import ENGINE_KEYS

    body = "\n".join("    " + line for line in ENGINE_KEYS.strip("\n").splitlines())
    s = load_text(f"services:\n  s:\n{body}\n", workdir=tmp_path, project="demo", environ={}).stack
    p = create_params(s, "s", "i", "h")
    c, h = p.container, p.host
    assert p.name == "my-app.1"
    assert c["ports"] == [(3000, "tcp"), (4000, "udp"), (4001, "udp"), (5000, "tcp")] and "port_bindings" not in h
    assert (c["tty"], c["stdin_open"], c["platform"]) == (True, True, "linux/arm64")
    assert (c["domainname"], c["mac_address"], c["stop_signal"]) == ("example.lan", "02:42:ac:11:00:02", "SIGUSR1")
    assert h["extra_hosts"] == ["db.local:10.0.0.5", "v6:::1"]
    assert (h["dns"], h["dns_search"], h["dns_opt"]) == (["1.1.1.1"], ["lan"], ["use-vc"])
    assert h["sysctls"] == {"net.core.somaxconn": "1024"}
    assert h["ulimits"] == [{"name": "nofile", "soft": 1024, "hard": 2048},
                            {"name": "nproc", "soft": 65535, "hard": 65535}]
    assert (h["shm_size"], h["init"], h["read_only"]) == (64 << 20, True, True)
    assert h["security_opt"] == ["no-new-privileges:true"]
    assert (h["pid_mode"], h["ipc_mode"], h["uts_mode"], h["userns_mode"], h["cgroupns"]) == (
        "host", "shareable", "host", "host", "private")
    assert h["group_add"] == ["audio", "44"]
    assert (h["pids_limit"], h["cpu_shares"], h["cpu_quota"], h["cpu_period"], h["cpu_rt_runtime"]) == (
        100, 512, 50000, 100000, 950_000)
    assert (h["cpuset_cpus"], h["cpu_count"], h["cpu_percent"]) == ("0,1", 2, 50)
    assert (h["mem_reservation"], h["memswap_limit"], h["mem_swappiness"]) == (32 << 20, -1, 10)
    assert (h["oom_score_adj"], h["oom_kill_disable"]) == (-500, True)
    assert h["device_cgroup_rules"] == ["c 189:* rmw"]
    assert (h["runtime"], h["cgroup_parent"], h["storage_opt"]) == ("runc", "/armstack", {"size": "1G"})
    assert h["blkio_weight"] == 300 and h["blkio_weight_device"] == [{"Path": "/dev/sda", "Weight": 400}]
    assert h["device_read_bps"] == [{"Path": "/dev/sda", "Rate": 1 << 20}]
    assert h["device_write_iops"] == [{"Path": "/dev/sda", "Rate": 30}]
    assert h["devices"] == ["/dev/ttyUSB0", "/dev/ttyACM0:/dev/modem:rw"]
    assert h["device_requests"] == [{"driver": "cdi", "device_ids": ["vendor.com/gpu=all"]}]
    assert p.host_raw == {"Annotations": {"com.example.a": "1"}}


def test_defaults_add_nothing_to_the_create_parameters() -> None:
    p = create_params(_stack(ServiceSpec("web", image="x")), "web", "i", "h")
    assert set(p.container) == {"labels", "stop_timeout"}
    assert set(p.host) == {"restart_policy", "log_config", "network_mode"}
    assert p.host_raw == {} and p.links == ()


def test_mounts_use_binds_unless_an_option_needs_the_mount_api() -> None:
    vols = (
        VolumeMount("bind", "/a", "/h/a", selinux="Z"),
        VolumeMount("bind", "/b", "/h/b", True, propagation="rshared"),
        VolumeMount("bind", "/c", "/h/c", create_host_path=False),
        VolumeMount("volume", "/d", "data", nocopy=True, subpath="sub"),
        VolumeMount("volume", "/e", "data", True, selinux="z"),
        VolumeMount("tmpfs", "/f", tmpfs_size=1024, tmpfs_mode=0o1777),
        VolumeMount("tmpfs", "/g", read_only=True),
        VolumeMount("tmpfs", "/h"),
    )
    p = create_params(_stack(ServiceSpec("web", image="x", volumes=vols)), "web", "i", "h")
    assert p.host["binds"] == ["/h/a:/a:rw,Z", "demo_data:/e:ro,z"]
    assert p.host["mounts"] == [
        {"Target": "/b", "Type": "bind", "ReadOnly": True, "Source": "/h/b",
         "BindOptions": {"CreateMountpoint": True, "Propagation": "rshared"}},
        {"Target": "/c", "Type": "bind", "ReadOnly": False, "Source": "/h/c",
         "BindOptions": {"CreateMountpoint": False}},
        {"Target": "/d", "Type": "volume", "ReadOnly": False, "Source": "demo_data",
         "VolumeOptions": {"NoCopy": True, "Subpath": "sub"}},
        {"Target": "/f", "Type": "tmpfs", "ReadOnly": False, "TmpfsOptions": {"SizeBytes": 1024, "Mode": 0o1777}},
        {"Target": "/g", "Type": "tmpfs", "ReadOnly": True},
    ]
    assert p.host["tmpfs"] == {"/h": ""}


def test_links_container_names_and_attached_services() -> None:
    db = ServiceSpec("db", image="x", container_name="shared-db")
    app = ServiceSpec("app", image="x", links=(("db", "database"),), volumes_from=(VolumesFrom("db"),))
    side = ServiceSpec("side", image="x", network_mode="service:db")
    s = _stack(db, app, side)
    p = create_params(s, "app", "i", "h")
    # The alias, the numbered service name and the container's name, as compose links them.
    links = (("shared-db", "database"), ("shared-db", "db-1"), ("shared-db", "shared-db"))
    assert p.links == links and p.host["links"] == list(links)
    assert p.host["volumes_from"] == ["shared-db"]
    assert create_params(s, "side", "i", "h").host["network_mode"] == "container:shared-db"


def test_ipc_and_pid_of_a_service_name_its_container() -> None:
    shm = ServiceSpec("shm", image="x", ipc="shareable")
    app = ServiceSpec("app", image="x", ipc="service:shm", pid="service:shm")
    s = _stack(shm, app)
    p = create_params(s, "app", "i", "h", attached={"shm": "abc123"})
    assert (p.host["ipc_mode"], p.host["pid_mode"]) == ("container:abc123", "container:abc123")
    assert create_params(s, "app", "i", "h").host["ipc_mode"] == "container:demo-shm-1"
    assert dependencies_of(app) == {"shm"}


def test_systempaths_unconfined_and_device_requests() -> None:
    spec = ServiceSpec("web", image="x", security_opt=("systempaths=unconfined", "label=disable"),
                       device_requests=(DeviceRequest("nvidia", -1, (), ("gpu",)),))
    p = create_params(_stack(spec), "web", "i", "h")
    assert p.host["security_opt"] == ["label=disable"]
    assert p.host_raw == {"MaskedPaths": [], "ReadonlyPaths": []}
    assert p.host["device_requests"] == [
        {"driver": "nvidia", "count": -1, "device_ids": [], "capabilities": [["gpu"]], "options": {}}]


@pytest.mark.parametrize(
    ("platform", "engine", "ok"),
    [
        ("linux/arm64", ("linux", "arm64"), True),
        ("linux/arm64/v8", ("linux", "arm64"), True),
        ("linux/aarch64", ("linux", "arm64"), True),
        ("linux/arm/v7", ("linux", "arm"), True),
        ("LINUX/AMD64", ("linux", "amd64"), True),
        ("linux/x86_64", ("linux", "amd64"), True),
        ("linux/amd64", ("linux", "arm64"), False),
        ("windows/amd64", ("linux", "amd64"), False),
    ],
)
def test_platform_must_match_the_engine(platform: str, engine: tuple[str, str], ok: bool) -> None:
    problem = platform_mismatch(platform, *engine)
    assert (problem is None) == ok
    if not ok:
        assert problem is not None and f"platform: {engine[0]}/{engine[1]}" in problem


def test_container_name_conflicts() -> None:
    ours = {L.STACK: "demo", L.SERVICE: "db"}
    assert name_conflict("shared-db", "demo", "db", None) is None
    assert name_conflict("shared-db", "demo", "db", ours) is None
    other_stack = name_conflict("shared-db", "demo", "db", {L.STACK: "other", L.SERVICE: "db"})
    assert other_stack is not None and "service 'db' of stack 'other'" in other_stack
    by_hand = name_conflict("shared-db", "demo", "db", {"maintainer": "me"})
    assert by_hand == ("The container name 'shared-db' of service 'db' (container_name) is already used by a "
                       "container this stack does not manage. Remove or rename that container, or change "
                       "container_name in the compose file.")


def test_settings_an_old_engine_would_drop_are_refused() -> None:
    spec = ServiceSpec("web", image="x", annotations=(("a", "b"),),
                       volumes=(VolumeMount("volume", "/d", "data", subpath="sub"),))
    assert api_too_old(spec, "1.45") is None
    assert api_too_old(ServiceSpec("web", image="x"), "1.24") is None
    assert api_too_old(spec, "1.43") == (
        "Service 'web' uses settings this engine (API 1.43) would ignore: 'volume.subpath' needs API 1.45. "
        "Upgrade the Docker engine, or remove the setting.")
    problem = api_too_old(spec, "1.41")
    assert problem is not None and "'annotations' needs API 1.43, 'volume.subpath' needs API 1.45" in problem
