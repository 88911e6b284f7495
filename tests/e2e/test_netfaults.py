"""Network faults between the services of a stack, on an emulated device (harness.netfaults).

The minimal stack's client asks the server for a hit by name every second and logs either
``hits: N`` or ``server unreachable: <why>``; the server logs every request it serves.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.device import EmulatedDevice
from harness.netfaults import CHAIN
from tests.e2e.conftest import HIT, up_minimal

UNREACHABLE = r"server unreachable: .*timed out"
CLIENT_GET = '"GET / '
NO_NAME = r"server unreachable: .*(name resolution|Name or service not known|not known)"


@pytest.mark.quick
def test_partition_shows_in_the_logs_survives_a_restart_and_heals(arm_device: EmulatedDevice, stacks: Path) -> None:
    d = arm_device
    up_minimal(d, stacks)
    restarts = d.services()["client"].restarts

    d.partition("client", "server")
    # The client's requests time out; the server serves none of them while it lasts (its own
    # healthcheck's GET /health goes on).
    d.wait_for_log("client", UNREACHABLE, timeout=60)
    served = len(d.logs("server"))
    d.wait_for_log("client", UNREACHABLE, timeout=60)
    assert [ln for ln in d.logs("server")[served:] if CLIENT_GET in ln] == []

    # A restarted server has a new network namespace: the rules follow it there.
    old = d.container("server").attrs["State"]["Pid"]
    d.crash("server")
    d.wait_until_running("server", timeout=60)
    net = d.network_faults()

    def reapplied() -> str | None:
        c = d.find_container("server")
        rules = net.rules_in("server") if c is not None and c.attrs["State"]["Pid"] != old else ""
        return rules if "DROP" in rules else None

    rules = d.wait_for(reapplied, 30, "the partition's rules in the restarted server's namespace")
    assert f"-A {CHAIN} -s " in rules, rules
    d.wait_for_log("client", UNREACHABLE, timeout=60)

    d.heal_network()
    d.wait_for_log("client", HIT, timeout=60)
    d.wait_for_log("server", CLIENT_GET, timeout=30)
    assert net.rules_in("server") == "" and net.rules_in("client") == ""
    # A partition is nothing the engine or the runtime sees: the client never restarted.
    assert d.services()["client"].restarts == restarts
    assert not net.errors, net.errors


@pytest.mark.quick
def test_dns_failure_makes_lookups_fail_and_heals(arm_device: EmulatedDevice, stacks: Path) -> None:
    d = arm_device
    up_minimal(d, stacks)

    d.dns_failure()
    d.wait_for_log("client", NO_NAME, timeout=60)
    # The name is what fails: the server's address still answers.
    ip = next(iter(d.container("server").attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
    res = d.exec("client", ["python3", "-c", f"import urllib.request; print(urllib.request.urlopen("
                                              f"'http://{ip}:8000/health', timeout=10).read().decode())"])
    assert (res.exit_code, res.output.strip()) == (0, "ok"), res.output
    res = d.exec("client", ["python3", "-c", "import socket; socket.gethostbyname('server')"])
    assert res.exit_code != 0, res.output

    d.heal_network()
    d.wait_for_log("client", HIT, timeout=60)
    res = d.exec("client", ["python3", "-c", "import socket; print(socket.gethostbyname('server'))"])
    assert (res.exit_code, res.output.strip()) == (0, ip), res.output


@pytest.mark.full
def test_isolate_cuts_a_service_from_everything(arm_device: EmulatedDevice, stacks: Path) -> None:
    d = arm_device
    up_minimal(d, stacks)
    d.isolate("client")
    d.wait_for_log("client", UNREACHABLE, timeout=60)
    d.heal_network()
    d.wait_for_log("client", HIT, timeout=60)


@pytest.mark.full
def test_netem_where_the_kernel_has_it(arm_device: EmulatedDevice, stacks: Path) -> None:
    d = arm_device
    reason = d.netem_support()
    if reason is not None:
        pytest.skip(reason)
    up_minimal(d, stacks)
    d.latency("client", 1500)
    # Each request now takes a round trip of more than a second and a half.
    res = d.exec("client", ["python3", "-c", "import time, urllib.request\nt = time.monotonic()\n"
                                              "urllib.request.urlopen('http://server:8000/health', timeout=30)\n"
                                              "print(time.monotonic() - t)"])
    assert res.exit_code == 0 and float(res.output.strip()) >= 1.4, res.output
    d.heal_network()
