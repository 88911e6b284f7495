"""Top-level networks and volumes: every key read, and mapped to the engine as docker compose does."""

from __future__ import annotations

from pathlib import Path

from runtime import labels as L
from runtime.compose import load_text
from runtime.compose.model import IpamPool, IpamSpec, NetworkSpec, VolumeSpec
from runtime.resourcespec import network_create_kwargs, volume_create_kwargs

TEXT = """\
name: demo
services:
  web:
    image: nginx:1
    networks: [front, back]
    volumes: [data:/data, shared:/shared]
networks:
  front:
    driver: bridge
    driver_opts: {com.docker.network.bridge.name: br-front, com.docker.network.driver.mtu: 1400}
    internal: true
    attachable: true
    enable_ipv6: true
    labels: [team=a]
    ipam:
      driver: default
      config:
        - subnet: 172.28.0.0/16
          ip_range: 172.28.5.0/24
          gateway: 172.28.5.254
          aux_addresses: {host1: 172.28.1.5, host2: 172.28.1.6}
        - subnet: 2001:db8:abcd::/64
      options: {foo: bar}
  back:
    name: my-back
  unused:
    external: true
volumes:
  data:
    driver: local
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=100m,uid=1000"}
    labels: {team: a}
  shared:
    name: shared-data
"""


def test_every_network_and_volume_key_is_read_without_warnings(tmp_path: Path) -> None:
    result = load_text(TEXT, workdir=tmp_path, environ={})
    assert list(result.warnings) == []
    st = result.stack
    front = next(n for n in st.networks if n.name == "front")
    assert front == NetworkSpec(
        "front", driver="bridge",
        driver_opts=(("com.docker.network.bridge.name", "br-front"), ("com.docker.network.driver.mtu", "1400")),
        internal=True, attachable=True, enable_ipv6=True, labels=(("team", "a"),),
        ipam=IpamSpec(driver="default", options=(("foo", "bar"),), config=(
            IpamPool(subnet="172.28.0.0/16", ip_range="172.28.5.0/24", gateway="172.28.5.254",
                     aux_addresses=(("host1", "172.28.1.5"), ("host2", "172.28.1.6"))),
            IpamPool(subnet="2001:db8:abcd::/64"))))
    assert st.network_name("back") == "my-back" and st.network_name("front") == "demo_front"
    assert st.volume_name("shared") == "shared-data" and st.volume_name("data") == "demo_data"
    data = next(v for v in st.volumes if v.name == "data")
    assert data.driver_opts == (("device", "tmpfs"), ("o", "size=100m,uid=1000"), ("type", "tmpfs"))


def test_network_create_parameters_follow_compose(tmp_path: Path) -> None:
    st = load_text(TEXT, workdir=tmp_path, environ={}).stack
    front = next(n for n in st.networks if n.name == "front")
    kw = network_create_kwargs("demo", "front", front, {"io.armstack.test": "1"})
    labels = kw.pop("labels")
    assert labels["team"] == "a" and labels[L.STACK] == "demo" and labels[L.COMPOSE_NETWORK] == "front"
    assert kw == {
        "driver": "bridge", "check_duplicate": True, "internal": True, "attachable": True, "enable_ipv6": True,
        "options": {"com.docker.network.bridge.name": "br-front", "com.docker.network.driver.mtu": "1400"},
        "ipam": {"Driver": "default", "Options": {"foo": "bar"}, "Config": [
            {"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24", "Gateway": "172.28.5.254",
             "AuxiliaryAddresses": {"host1": "172.28.1.5", "host2": "172.28.1.6"}},
            {"Subnet": "2001:db8:abcd::/64"}]},
    }
    # Nothing set: the engine's defaults, no IPAM section at all.
    plain = network_create_kwargs("demo", "back", None)
    assert set(plain) == {"driver", "labels", "check_duplicate"} and plain["driver"] == "bridge"


def test_volume_create_parameters_follow_compose(tmp_path: Path) -> None:
    st = load_text(TEXT, workdir=tmp_path, environ={}).stack
    data = next(v for v in st.volumes if v.name == "data")
    kw = volume_create_kwargs("demo", "data", data)
    assert kw["driver"] == "local" and kw["driver_opts"] == {"type": "tmpfs", "device": "tmpfs",
                                                             "o": "size=100m,uid=1000"}
    assert kw["labels"][L.COMPOSE_VOLUME] == "data" and kw["labels"]["team"] == "a"
    assert volume_create_kwargs("demo", "x", VolumeSpec("x")) == {
        "driver": "local", "labels": {L.STACK: "demo", L.COMPOSE_PROJECT: "demo", L.COMPOSE_VOLUME: "x"}}


def test_bad_network_settings_are_errors_that_name_the_field(tmp_path: Path) -> None:
    import pytest

    from runtime.errors import ComposeError

    for bad, words in (("    internal: maybe\n", ("networks.n", "internal")),
                       ("    ipam:\n      config:\n        - subnet: 10.0.0.0/8\n          bogus: 1\n",
                        ("networks.n", "ipam.config", "bogus"))):
        text = "services:\n  a:\n    image: x\n    networks: [n]\nnetworks:\n  n:\n" + bad
        with pytest.raises(ComposeError) as exc:
            load_text(text, workdir=tmp_path, environ={})
        assert all(w in str(exc.value) for w in words), str(exc.value)


ATTACH = """\
name: demo
services:
  web:
    image: nginx:1
    networks:
      zeta:
      back:
        priority: 5
      alpha:
      front:
        priority: 100
        aliases: [www]
        ipv4_address: 172.30.0.10
        ipv6_address: "fd00:30::10"
networks:
  zeta:
  back:
  alpha:
  front:
"""


def test_the_network_joined_at_create_is_the_one_compose_picks(tmp_path: Path) -> None:
    from runtime.containerspec import create_params

    st = load_text(ATTACH, workdir=tmp_path, environ={}).stack
    params = create_params(st, "web", "sha256:x", "h")
    # Highest priority first, then by name: front (100), back (5), alpha, zeta.
    assert params.first_network == "demo_front" and params.host["network_mode"] == "demo_front"
    assert params.more_networks == ("demo_back", "demo_alpha", "demo_zeta")
    assert params.endpoints["demo_front"] == {"aliases": ["web", "www"], "ipv4_address": "172.30.0.10",
                                              "ipv6_address": "fd00:30::10"}
    assert params.endpoints["demo_zeta"] == {"aliases": ["web"]}


def test_attachment_settings_change_the_hash_only_when_set(tmp_path: Path) -> None:
    import dataclasses

    from runtime.hashing import config_hash

    st = load_text(ATTACH, workdir=tmp_path, environ={}).stack
    web = st.service("web")
    bare = dataclasses.replace(st, services=(dataclasses.replace(web, network_settings=()),))
    assert config_hash(st, "web", "i", {}) != config_hash(bare, "web", "i", {})
    moved = dataclasses.replace(st, services=(dataclasses.replace(
        web, network_settings=tuple(dataclasses.replace(a, ipv4_address="172.30.0.11") if a.ipv4_address else a
                                    for a in web.network_settings)),))
    assert config_hash(st, "web", "i", {}) != config_hash(moved, "web", "i", {})
