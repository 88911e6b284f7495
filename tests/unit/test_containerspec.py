"""ServiceSpec -> engine create parameters."""

from __future__ import annotations

from runtime import labels as L
from runtime.compose.model import (
    Healthcheck,
    LoggingSpec,
    PortSpec,
    ServiceSpec,
    StackSpec,
    VolumeMount,
    VolumesFrom,
)
from runtime.containerspec import create_params, extra_labels


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
