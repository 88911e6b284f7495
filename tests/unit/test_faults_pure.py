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



def test_the_start_gate_holds_the_runtime_after_its_imports(tmp_path: Path) -> None:
    """With a start gate that is not there, the runtime's Python imports the runtime and waits for
    the gate before its main code runs; with the gate there (a restart) or none, nothing waits."""
    (tmp_path / "sitecustomize.py").write_text(procfaults.CLOCK_HOOK.read_text())
    gate = tmp_path / "gate"
    probe = textwrap.dedent(f"""
        import os, sys
        print(os.path.exists({str(gate)!r}), "runtime.supervisor" in sys.modules)
    """)
    repo = Path(__file__).resolve().parents[2]
    env: dict[str, Any] = {**os.environ, "PYTHONPATH": f"{tmp_path}:{repo}", "ARMSTACK_START_GATE": str(gate)}
    held = subprocess.Popen([sys.executable, "-c", probe], env=env, stdout=subprocess.PIPE, text=True)
    try:
        # Still held once its imports are surely done: the gate is what it waits for.
        with pytest.raises(subprocess.TimeoutExpired):
            held.wait(timeout=5)
        gate.touch()
        out, _ = held.communicate(timeout=30)
    finally:
        held.kill()
    assert out.split() == ["True", "True"]
    again = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert again.stdout.split() == ["True", "False"]   # open: no wait, nothing imported ahead
    env.pop("ARMSTACK_START_GATE")
    gate.unlink()
    ungated = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert ungated.stdout.split() == ["False", "False"]


# -- NetworkFaults against a fake device: what is (re-)applied where --------------------------------

class FakeContainer:
    def __init__(self, service: str, cid: str, pid: int, ip: str) -> None:
        self.id, self.labels = cid, {"io.armstack.service": service, "io.armstack.stack": "p"}
        self.attrs: dict[str, Any] = {"State": {"Pid": pid}, "NetworkSettings": {"Networks": {
            "p_default": {"IPAddress": ip, "Aliases": [service, cid[:12]]}}}}


class FakeDevice:
    name, project = "dev", "p"

    def __init__(self, *containers: FakeContainer) -> None:
        self.running = {c.labels["io.armstack.service"]: c for c in containers}
        self.commands: list[str] = []
        self.detached: list[tuple[str, str]] = []
        self.connected: list[tuple[str, str, list[str]]] = []
        device = self

        class Network:
            def __init__(self, name: str) -> None:
                self.name = name

            def disconnect(self, cid: str) -> None:
                device.detached.append((self.name, cid))

            def connect(self, cid: str, aliases: list[str]) -> None:
                device.connected.append((self.name, cid, aliases))

        class Engine:
            class containers:  # noqa: N801 - docker-py's attribute name
                @staticmethod
                def list(filters: dict[str, Any]) -> list[FakeContainer]:
                    return list(device.running.values())

            class networks:  # noqa: N801
                @staticmethod
                def get(name: str) -> Network:
                    return Network(name)

        self.engine = Engine()

    def shell(self, cmd: str, check: bool = True) -> Any:
        from harness.protocol import ExecResult

        self.commands.append(cmd)
        return ExecResult(0, "")

    def container(self, service: str, *, running: bool = True) -> FakeContainer:
        if service not in self.running:
            raise FaultError(f"service {service!r} has no running container")
        return self.running[service]


def _net(device: FakeDevice, native: bool = True) -> Any:
    from harness.netfaults import NetworkFaults

    net = NetworkFaults(device, native=native)
    net._watch = lambda: None   # type: ignore[method-assign]  # no engine events here: apply_all is called by hand
    return net


def test_a_restarted_container_gets_the_rules_again_and_its_peer_its_new_address() -> None:
    dev = FakeDevice(FakeContainer("web", "w1", 100, "10.0.0.2"), FakeContainer("db", "d1", 200, "10.0.0.3"))
    net = _net(dev)
    net.partition("web", "db")
    assert [c.split()[2] for c in dev.commands] == ["200", "100"]   # nsenter -t <pid>: db's, web's
    assert "-d 10.0.0.2 -j DROP" in dev.commands[0] and "-d 10.0.0.3 -j DROP" in dev.commands[1]
    dev.commands.clear()
    net.apply_all()                      # a start event of something else: nothing changed, nothing run
    assert dev.commands == []
    # db restarts: same container id, new process and namespace, a new address.
    dev.running["db"] = FakeContainer("db", "d1", 300, "10.0.0.9")
    net.apply_all()
    assert [c.split()[2] for c in dev.commands] == ["300", "100"]
    assert "-d 10.0.0.9 -j DROP" in dev.commands[1] and "10.0.0.3" not in dev.commands[1]
    dev.commands.clear()
    net.heal()
    assert len(dev.commands) == 2 and all(f"-X {CHAIN}" in c for c in dev.commands)


def test_a_fault_on_a_service_that_does_not_run_says_so() -> None:
    net = _net(FakeDevice(FakeContainer("web", "w1", 100, "10.0.0.2")))
    with pytest.raises(FaultError, match="'db' has no running container"):
        net.partition("web", "db")
    with pytest.raises(FaultError, match="two services"):
        net.partition("web", "web")


def test_without_namespace_access_isolation_detaches_and_heal_reattaches_with_the_aliases() -> None:
    dev = FakeDevice(FakeContainer("web", "w1abcdef0123", 100, "10.0.0.2"))
    net = _net(dev, native=False)
    net.isolate("web")
    assert dev.detached == [("p_default", "w1abcdef0123")] and dev.commands == []
    with pytest.raises(FaultError, match="network namespaces"):
        net.dns_failure()
    net.heal()
    # The engine's own short-id alias is its to add again; the service name must come back.
    assert dev.connected == [("p_default", "w1abcdef0123", ["web"])]
