"""The config hash changes exactly when a container has to be replaced."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.compose.model import (
    BlkioConfig,
    Dependency,
    DeviceRequest,
    Healthcheck,
    PortSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
    Ulimit,
    VolumeMount,
    VolumeSpec,
)
from runtime.hashing import HASH_LENGTH, SCHEMA_1_FIELDS, _plain, attached_services, config_hash
from tests.unit.specs import network, stack, svc

IMG = "sha256:aaa"


def h(st: StackSpec, service: str = "web", image_id: str = IMG, attached: dict[str, str] | None = None) -> str:
    return config_hash(st, service, image_id, attached or {})


def with_web(**changes: object) -> StackSpec:
    return stack(svc("web", **changes), svc("db"))  # type: ignore[arg-type]


BASE = with_web()

# Changes that need a new container: every one must change the hash.
RECREATE = {
    "command": ("serve",),
    "entrypoint": ("/init",),
    "environment": (("A", "1"),),
    "ports": (PortSpec(80, 8080),),
    "volumes": (VolumeMount("bind", "/x", "/host"),),
    "healthcheck": Healthcheck(("CMD", "true")),
    "labels": (("k", "v"),),
    "privileged": True,
    "devices": ("/dev/i2c-1",),
    "cap_add": ("NET_ADMIN",),
    "user": "1000",
    "hostname": "box",
    "mem_limit": 64 << 20,
    "cpus": 0.5,
    "stop_signal": "SIGINT",
    "stop_grace_period": 30.0,
    "image": "alpine:3.20",
    "network_mode": "host",
}


def test_shape() -> None:
    value = h(BASE)
    assert len(value) == HASH_LENGTH and int(value, 16) >= 0
    assert value == h(with_web())  # equal specs, equal hashes (no ids, no ordering effects)


def test_every_container_field_changes_the_hash() -> None:
    seen = {h(BASE)}
    for field, value in RECREATE.items():
        changed = h(with_web(**{field: value}))
        assert changed not in seen, field
        seen.add(changed)


def test_restart_depends_on_and_build_do_not_change_the_hash() -> None:
    base = h(BASE)
    assert h(with_web(restart=RestartPolicy("on-failure", 5))) == base
    assert h(with_web(depends_on=(Dependency("db", "service_healthy"),))) == base
    assert h(stack(dataclasses.replace(svc("web"), build=svc("x", build=True).build), svc("db"))) == base


def test_image_id_project_and_service_change_the_hash() -> None:
    assert h(BASE, image_id="sha256:bbb") != h(BASE)
    assert h(dataclasses.replace(BASE, project="other")) != h(BASE)
    assert h(BASE, service="db") != h(BASE)


def test_engine_side_volume_and_network_names_count() -> None:
    st = stack(svc("web", volumes=["data"], networks=["front"]), networks=(network("front"),))
    ext_vol = dataclasses.replace(st, volumes=(VolumeSpec("data", external=True, external_name="shared"),))
    ext_net = dataclasses.replace(st, networks=(network("front", external=True),))
    assert len({h(st), h(ext_vol), h(ext_net)}) == 3


def test_attached_ids_count_only_for_joined_services() -> None:
    st = stack(svc("vpn"), svc("data"), svc("app", net="vpn", vfrom=["data"]), svc("other"))
    base = h(st, "app", attached={"vpn": "c1", "data": "c2"})
    assert attached_services(st.service("app")) == ("data", "vpn")
    assert h(st, "app", attached={"vpn": "c1", "data": "c2", "other": "c9"}) == base
    assert h(st, "app", attached={"vpn": "c1b", "data": "c2"}) != base
    assert h(st, "app", attached={"vpn": "c1", "data": "c2b"}) != base
    assert h(st, "app", attached={"vpn": "c1"}) != base
    # a service that joins nothing ignores every id
    assert h(st, "other", attached={"vpn": "x"}) == h(st, "other")


def test_ipc_and_pid_of_a_service_count_as_joined() -> None:
    st = stack(svc("shm", ipc="shareable"), svc("app", ipc="service:shm", pid="service:shm"))
    assert attached_services(st.service("app")) == ("shm",)
    assert h(st, "app", attached={"shm": "c1"}) != h(st, "app", attached={"shm": "c2"})


texts = st.text(alphabet="abc=:/ 1", max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    env=st.lists(st.tuples(texts, texts), max_size=3),
    cmd=st.none() | st.lists(texts, max_size=3).map(tuple),
    env2=st.lists(st.tuples(texts, texts), max_size=3),
    cmd2=st.none() | st.lists(texts, max_size=3).map(tuple),
)
def test_hash_is_injective_on_random_fields(
    env: list[tuple[str, str]],
    cmd: tuple[str, ...] | None,
    env2: list[tuple[str, str]],
    cmd2: tuple[str, ...] | None,
) -> None:
    a = stack(ServiceSpec("web", image="x", environment=tuple(env), command=cmd))
    b = stack(ServiceSpec("web", image="x", environment=tuple(env2), command=cmd2))
    assert (h(a) == h(b)) == ((env, cmd) == (env2, cmd2))


# Keys added after hash schema 1: each must change the hash when set (a recreate applies it)...
NEWER = {
    "container_name": "fixed",
    "expose": ("3000/tcp",),
    "links": (("db", "db"),),
    "extra_hosts": ("a:10.0.0.1",),
    "dns": ("1.1.1.1",),
    "sysctls": (("net.core.somaxconn", "1024"),),
    "ulimits": (Ulimit("nofile", 1, 2),),
    "shm_size": 1 << 20,
    "init": False,
    "platform": "linux/arm64",
    "read_only": True,
    "tty": True,
    "pid": "host",
    "cpu_shares": 512,
    "mem_reservation": 1 << 20,
    "oom_kill_disable": True,
    "blkio_config": BlkioConfig(weight=100),
    "annotations": (("a", "b"),),
    "device_requests": (DeviceRequest("nvidia"),),
    "volumes": (VolumeMount("bind", "/x", "/host", propagation="rshared"),),
}


def test_every_newer_field_changes_the_hash_when_set() -> None:
    seen = {h(BASE), h(with_web(volumes=(VolumeMount("bind", "/x", "/host"),)))}
    for field, value in NEWER.items():
        changed = h(with_web(**{field: value}))
        assert changed not in seen, field
        seen.add(changed)


def test_newer_fields_at_their_default_leave_the_schema_1_document_unchanged() -> None:
    # ...and leave it alone at their default: the document is the one the previous release hashed.
    spec = with_web(volumes=(VolumeMount("bind", "/x", "/host"),)).service("web")
    plain = _plain(spec)
    assert set(plain) == SCHEMA_1_FIELDS["ServiceSpec"]
    assert set(plain["volumes"][0]) == SCHEMA_1_FIELDS["VolumeMount"]
    assert set(_plain(dataclasses.replace(spec, init=False))) == SCHEMA_1_FIELDS["ServiceSpec"] | {"init"}


# -- hashes of existing containers stay put ----------------------------------------------------

def _pinned_stack() -> StackSpec:
    from runtime.compose.model import NetworkSpec, ServiceSpec, VolumeMount, VolumeSpec

    web = ServiceSpec("web", image="nginx:1", networks=("front", "back"),
                      volumes=(VolumeMount("volume", "/data", "data"),), environment=(("A", "1"),),
                      labels=(("x", "y"),))
    host = ServiceSpec("mon", image="mon:1", network_mode="host", privileged=True)
    plain = ServiceSpec("db", image="postgres:14", networks=("default",))
    return StackSpec("demo", (web, host, plain), volumes=(VolumeSpec("data"),),
                     networks=(NetworkSpec("front"), NetworkSpec("back", driver="bridge")))


# Computed with the code before network attachment settings (aliases, addresses, priority) and
# network/volume settings (ipam, driver_opts, ...) were added: a spec that does not use them must
# keep its hash, or every container on every device would be recreated by the upgrade.
PINNED = {"web": "590fbb582ee1f8d36bd85ebb5b96d8d6", "mon": "2a643eb7c95f0fc9113f875671f0fb0a",
          "db": "1dba1f426ba16ef0c097d439ba59dd09"}


def test_hashes_of_specs_without_new_keys_are_unchanged() -> None:
    st = _pinned_stack()
    assert {s: config_hash(st, s, "sha256:abc", {}) for s in PINNED} == PINNED
