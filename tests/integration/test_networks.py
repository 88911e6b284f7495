"""Networks as docker compose creates them, against the native engine: IPAM, internal, attachment
settings and priority, unused networks not created, a fully qualified image reference found locally."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.integration.conftest import LOOP, Stack

docker = pytest.importorskip("docker")


def test_network_settings_and_attachments_reach_the_engine(stack: Stack, engine: Any) -> None:
    a, b = random.randint(100, 250), random.randint(0, 250)
    subnet, address = f"10.{a}.{b}.0/24", f"10.{a}.{b}.10"
    (stack.dir / "compose.yaml").write_text(f"""\
name: {stack.project}
services:
  app:
    image: docker.io/armstack-test/base:latest
    command: ["sh", "-c", "{LOOP.format(name='app')}"]
    stop_grace_period: 1s
    networks:
      back:
      front:
        priority: 10
        aliases: [www]
        ipv4_address: {address}
networks:
  front:
    driver_opts: {{com.docker.network.driver.mtu: "1400"}}
    labels: {{team: a}}
    ipam:
      config:
        - subnet: {subnet}
          ip_range: 10.{a}.{b}.0/25
          gateway: 10.{a}.{b}.254
  back:
    internal: true
    attachable: true
  unused:
""")
    res = stack.cli("apply", "--timeout", "60")
    assert res.returncode == 0, res.stderr
    assert "pulling" not in res.stderr   # docker.io/armstack-test/base is the local armstack-test/base
    front = engine.networks.get(f"{stack.project}_front").attrs
    assert front["IPAM"]["Config"] == [{"Subnet": subnet, "IPRange": f"10.{a}.{b}.0/25", "Gateway": f"10.{a}.{b}.254"}]
    assert front["Options"]["com.docker.network.driver.mtu"] == "1400" and front["Labels"]["team"] == "a"
    assert front["Labels"]["io.armstack.stack"] == stack.project
    back = engine.networks.get(f"{stack.project}_back").attrs
    assert back["Internal"] is True and back["Attachable"] is True
    with pytest.raises(docker.errors.NotFound):
        engine.networks.get(f"{stack.project}_unused")
    app = stack.containers()["app"]
    assert app["HostConfig"]["NetworkMode"] == f"{stack.project}_front"   # the highest priority, at create
    nets = app["NetworkSettings"]["Networks"]
    assert set(nets) == {f"{stack.project}_front", f"{stack.project}_back"}
    assert nets[f"{stack.project}_front"]["IPAddress"] == address
    assert {"app", "www"} <= set(nets[f"{stack.project}_front"]["Aliases"] or [])
    res = stack.cli("down")
    assert res.returncode == 0, res.stderr
    with pytest.raises(docker.errors.NotFound):
        engine.networks.get(f"{stack.project}_front")
