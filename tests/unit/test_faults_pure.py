"""The pure parts of the network, process and time faults: rule sets, scripts, tc and update bodies."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from harness import procfaults
from harness.errors import FaultError
from harness.netfaults import (
    CHAIN,
    FaultSet,
    Netem,
    affected,
    filter_rules,
    filter_script,
    netem_reason,
    tc_commands,
)
from harness.procfaults import CpuLimit, clock_env, restore_update, starve_update

ADDRS = {"client": ("172.18.0.3",), "server": ("172.18.0.2", "172.19.0.2"), "db": ("172.19.0.4",)}


def test_a_partition_drops_the_peers_addresses_on_both_sides() -> None:
    f = FaultSet(partitions=frozenset({frozenset({"client", "server"})}))
    assert filter_rules("client", f, ADDRS) == [
        ["-s", "172.18.0.2", "-j", "DROP"], ["-d", "172.18.0.2", "-j", "DROP"],
        ["-s", "172.19.0.2", "-j", "DROP"], ["-d", "172.19.0.2", "-j", "DROP"]]
    assert filter_rules("server", f, ADDRS) == [["-s", "172.18.0.3", "-j", "DROP"], ["-d", "172.18.0.3", "-j", "DROP"]]
    assert filter_rules("db", f, ADDRS) == []
    assert affected(f, ADDRS) == {"client", "server"}
    # A peer with no running container has no address yet: its rules come when it starts.
    assert filter_rules("client", f, {"client": ("172.18.0.3",)}) == []


def test_isolation_keeps_loopback_and_dns_failure_matches_the_resolver_address_only() -> None:
    f = FaultSet(isolated=frozenset({"db"}), dns_down=True)
    assert filter_rules("db", f, ADDRS) == [["-i", "lo", "-j", "RETURN"], ["-o", "lo", "-j", "RETURN"],
                                            ["-j", "DROP"], ["-d", "127.0.0.11", "-j", "REJECT"]]
    # No port: the engine DNATs 127.0.0.11:53 to a port of its own.
    assert filter_rules("client", f, ADDRS) == [["-d", "127.0.0.11", "-j", "REJECT"]]
    assert affected(f, ADDRS) == set(ADDRS)
    assert affected(FaultSet(), ADDRS) == set()


def test_the_chain_script_sets_exactly_the_rules_and_healing_removes_it() -> None:
    script = filter_script([["-s", "10.0.0.2", "-j", "DROP"]])
    steps = script.split(" && ")
    assert steps[0] == f"(iptables -w -N {CHAIN} 2>/dev/null || iptables -w -F {CHAIN})"
    assert steps[1] == f"iptables -w -A {CHAIN} -s 10.0.0.2 -j DROP"
    # The jumps come last, once the chain is complete, and are not added twice.
    assert steps[2:] == [f"(iptables -w -C {c} -j {CHAIN} 2>/dev/null || iptables -w -I {c} 1 -j {CHAIN})"
                         for c in ("INPUT", "OUTPUT")]
    heal = filter_script([])
    assert f"-D INPUT -j {CHAIN}" in heal and f"-X {CHAIN}" in heal and heal.endswith("; true")


def test_tc_commands_carry_the_whole_spec_in_one_netem_qdisc() -> None:
    assert tc_commands("eth0", Netem(delay_ms=200, jitter_ms=50)) == [
        ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", "200ms", "50ms", "distribution",
         "normal"]]
    assert tc_commands("eth1", Netem(loss_percent=12.5, rate_kbit=256)) == [
        ["tc", "qdisc", "replace", "dev", "eth1", "root", "netem", "loss", "12.5%", "rate", "256kbit"]]
    assert tc_commands("eth0", None) == tc_commands("eth0", Netem()) == [["tc", "qdisc", "del", "dev", "eth0", "root"]]


def test_netem_specs_are_checked() -> None:
    with pytest.raises(FaultError, match="percentage"):
        Netem(loss_percent=120)
    with pytest.raises(FaultError, match="jitter needs a delay"):
        Netem(jitter_ms=5)
    with pytest.raises(FaultError, match="delay_ms"):
        Netem(delay_ms=-1)
    f = FaultSet().with_netem("b", Netem(delay_ms=10)).with_netem("a", Netem(loss_percent=1))
    assert [s for s, _ in f.shaped] == ["a", "b"] and f.netem_of("b") == Netem(delay_ms=10)
    assert f.with_netem("b", Netem()).netem_of("b") is None   # an empty spec lifts the shaping


def test_why_netem_is_not_there_is_said() -> None:
    assert netem_reason(True, 0, "") is None
    assert "no sch_netem" in str(netem_reason(True, 2, 'Error: Specified qdisc kind is unknown.\n'))
    assert "no `tc`" in str(netem_reason(False, 1, ""))
    said = netem_reason(True, 2, "RTNETLINK answers: Operation not permitted")
    assert said == "tc netem does not work here: RTNETLINK answers: Operation not permitted"


def test_cpu_starvation_and_its_heal_respect_the_engines_rules() -> None:
    # No limit: a CFS quota, lifted again with -1 (0 would mean "leave as it is" to the engine).
    assert starve_update(0.05, CpuLimit()) == {"CpuPeriod": 100_000, "CpuQuota": 5000}
    assert restore_update(CpuLimit()) == {"CpuPeriod": 100_000, "CpuQuota": -1}
    # `cpus:` (NanoCpus) cannot sit next to a quota: fewer NanoCpus, then the original back.
    assert starve_update(0.05, CpuLimit(nano_cpus=500_000_000)) == {"NanoCpus": 50_000_000}
    assert restore_update(CpuLimit(nano_cpus=500_000_000)) == {"NanoCpus": 500_000_000}
    # A quota of its own: in its own period, never under the engine's 1 ms floor.
    assert starve_update(0.001, CpuLimit(quota=50_000, period=200_000)) == {"CpuPeriod": 200_000, "CpuQuota": 1000}
    assert restore_update(CpuLimit(quota=50_000, period=200_000)) == {"CpuPeriod": 200_000, "CpuQuota": 50_000}
    with pytest.raises(FaultError, match="cpus must be > 0"):
        starve_update(0, CpuLimit())


def test_the_runtime_clock_environment_puts_the_hook_first() -> None:
    env = clock_env(["PATH=/usr/bin", "PYTHONPATH=/opt/armstack/src"])
    assert env == {"ARMSTACK_CLOCK_FILE": procfaults.CLOCK_FILE,
                   "PYTHONPATH": f"{procfaults.CLOCK_DIR}:/opt/armstack/src"}
    assert clock_env(None)["PYTHONPATH"] == procfaults.CLOCK_DIR
    assert procfaults.parse_offset("-86400.0\n") == -86400.0 and procfaults.parse_offset("junk") == 0.0


def test_the_clock_hook_moves_wall_time_only(tmp_path: Path) -> None:
    """The hook, in a Python of its own: time.time() follows the file, time.monotonic() does not."""
    (tmp_path / "sitecustomize.py").write_text(procfaults.CLOCK_HOOK.read_text())
    offset = tmp_path / "offset"
    offset.write_text("-86400.0\n")
    probe = textwrap.dedent(f"""
        import time, pathlib
        real = time.clock_gettime(time.CLOCK_REALTIME)
        print(round(time.time() - real), round(time.time_ns() / 1e9 - real))
        m = time.monotonic(); time.sleep(0.01); assert time.monotonic() > m
        pathlib.Path({str(offset)!r}).write_text("3600")
        time.sleep(0.3)
        print(round(time.time() - time.clock_gettime(time.CLOCK_REALTIME)))
        pathlib.Path({str(offset)!r}).unlink()
        time.sleep(0.3)
        print(round(time.time() - time.clock_gettime(time.CLOCK_REALTIME)))
    """)
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": str(tmp_path), "ARMSTACK_CLOCK_FILE": str(offset)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["-86400", "-86400", "3600", "0"]
