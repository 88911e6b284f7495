"""The chaos soak's pure parts: the seeded schedule, the ledger checker, the reports, the workload's
own recovery and the client's acknowledgement rule (against the real ledger code on localhost)."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from harness.chaos import CATALOGUE, History, LedgerClient, SoakResult, StepOutcome
from harness.chaosplan import ChaosStep, FaultKind, PlanError, StackTraits, plan, usable
from harness.ledger import LedgerFile, check, checksum, payload_for
from harness.protocol import POWER, PROCESS_FAULTS

pytestmark = pytest.mark.unit

LEDGER_APP = Path(__file__).resolve().parents[2] / "stacks" / "ledger" / "ledger" / "ledger.py"
STACK = StackTraits(("ledger", "watcher"), {"ledger": frozenset({"mem_limit", "healthcheck"})})
ALL_CAPS = {k.capability for k in CATALOGUE if k.capability}


# -- the schedule ------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    kinds = usable(CATALOGUE, ALL_CAPS, STACK)
    a, b = plan(7, 50, kinds, STACK), plan(7, 50, kinds, STACK)
    assert a == b
    assert plan(8, 50, kinds, STACK) != a
    assert [s.index for s in a] == list(range(1, 51))


def test_the_catalogue_order_does_not_change_the_schedule() -> None:
    kinds = usable(CATALOGUE, ALL_CAPS, STACK)
    assert plan(3, 30, kinds, STACK) == plan(3, 30, list(reversed(kinds)), STACK)


def test_every_kind_is_drawn_in_a_long_schedule_with_its_targets() -> None:
    steps = plan(1, 400, usable(CATALOGUE, ALL_CAPS, STACK), STACK)
    assert {s.fault for s in steps} == {k.name for k in CATALOGUE}
    for s in steps:
        kind = next(k for k in CATALOGUE if k.name == s.fault)
        if kind.scope == "device":
            assert s.target == ()
        elif kind.scope == "pair":
            assert s.target == ("ledger", "watcher")
        else:
            assert len(s.target) == 1 and s.target[0] in STACK.having(kind.needs)
        assert kind.hold[0] <= s.hold <= kind.hold[1]
        assert kind.values[0] <= s.value <= kind.values[1]
        assert 1.0 <= s.pause <= 4.0


def test_oom_only_hits_a_service_with_a_memory_limit() -> None:
    steps = plan(5, 200, usable(CATALOGUE, ALL_CAPS, STACK, only=("oom",)), STACK)
    assert {s.target for s in steps} == {("ledger",)}


def test_kinds_the_device_or_stack_cannot_take_are_left_out() -> None:
    no_limits = StackTraits(("a", "b"))
    names = {k.name for k in usable(CATALOGUE, {PROCESS_FAULTS}, no_limits)}
    assert "oom" not in names and "power_cut" not in names and "sigkill" in names
    pair = FaultKind("partition", "pair", "none", bound=10)
    assert usable([pair], set(), StackTraits(("only",))) == []
    steps = plan(2, 20, [pair], no_limits)
    assert {s.target for s in steps} == {("a", "b")}


def test_bad_requests_for_a_schedule_say_what_is_wrong() -> None:
    with pytest.raises(PlanError, match="unknown fault.*nope"):
        usable(CATALOGUE, ALL_CAPS, STACK, only=("nope",))
    with pytest.raises(PlanError, match="no fault fits"):
        plan(1, 3, usable(CATALOGUE, set(), STACK), STACK)
    with pytest.raises(PlanError, match="non-negative"):
        plan(1, -1, list(CATALOGUE), STACK)
    assert plan(1, 0, [], STACK) == []


def test_a_clock_jump_draws_its_seconds_both_ways() -> None:
    jumps = [s.value for s in plan(4, 60, usable(CATALOGUE, ALL_CAPS, STACK, only=("clock_jump",)), STACK)]
    assert min(jumps) < 0 < max(jumps) and all(abs(j) <= 86_400 for j in jumps)
    assert ChaosStep(1, "clock_jump", (), hold=3.0, value=-3600).describe() == "#1 clock_jump -3600 for 3.0s"


def test_a_step_describes_itself() -> None:
    assert ChaosStep(3, "sigkill", ("ledger",)).describe() == "#3 sigkill ledger"
    assert ChaosStep(4, "disk_full", (), hold=2.5).describe() == "#4 disk_full for 2.5s"


# -- the checker -------------------------------------------------------------------------------

def line(seed: int, seq: int, payload: str | None = None) -> bytes:
    p = payload if payload is not None else payload_for(seed, seq)
    return f"{seq} {p} {checksum(seq, p)}\n".encode()


def test_a_whole_ledger_passes_and_unanswered_records_are_no_error() -> None:
    data = b"".join(line(1, s) for s in (1, 2, 3, 5))
    v = check(1, [1, 2, 3], [4, 5], LedgerFile.parse(data))
    assert v.ok and v.lost == () and v.stored == 4
    assert (v.indeterminate, v.indeterminate_found) == (2, 1)


def test_a_lost_acknowledged_record_fails_the_soak() -> None:
    v = check(1, [1, 2, 3], [], LedgerFile.parse(line(1, 1) + line(1, 3)))
    assert not v.ok and v.lost == (2,)
    assert "lost: 2" in v.summary()


def test_a_record_stored_with_another_payload_is_corrupt() -> None:
    v = check(1, [1, 2], [], LedgerFile.parse(line(1, 1) + line(1, 2, "forged")))
    assert not v.ok and v.corrupt == (2,)


def test_torn_and_nul_filled_lines_are_reported_not_read() -> None:
    data = line(1, 1) + b"\0" * 40 + b"\n" + line(1, 2)[:-9] + b"\n" + line(1, 3)
    f = LedgerFile.parse(data)
    assert sorted(f.records) == [1, 3] and f.torn == (2, 3)
    v = check(1, [1, 3], [2], f)
    assert v.ok and v.torn == (2, 3)


def test_a_record_stored_twice_is_noted() -> None:
    v = check(1, [1], [], LedgerFile.parse(line(1, 1) * 2))
    assert v.ok and v.notes and "stored twice: 1" in v.notes[0]


# -- the reports -------------------------------------------------------------------------------

def result(ok: bool = True) -> SoakResult:
    steps = [StepOutcome(ChaosStep(1, "sigkill", ("ledger",), pause=1.0), 2.0, 2.5, 4.2, 30.0, ("ledger",), ()),
             StepOutcome(ChaosStep(2, "kill_runtime", ()), 10.0, 10.2, None if not ok else 3.0, 40.0, (), ())]
    verdict = check(7, [1, 2], [], LedgerFile.parse(line(7, 1) + line(7, 2)))
    hist = History(acknowledged=[1, 2], samples=[(1.0, 1), (12.0, 2)])
    states = [(float(t), {"ledger": "running" if t != 3 else "exited", "watcher": "running"}) for t in range(15)]
    return SoakResult(7, "stacks/ledger", "arm64", steps, verdict, hist, states, 15.0)


def test_a_soak_writes_events_junit_and_a_timeline(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    paths = result(ok=False).write(tmp_path)
    doc = json.loads(paths["events"].read_text())
    assert doc["seed"] == 7 and doc["ok"] is False
    assert [e["event"] for e in doc["events"]] == ["fault", "healed", "converged", "fault", "healed", "not-converged"]
    suite = ET.fromstring(paths["junit"].read_bytes())
    assert suite.get("failures") == "1" and suite.get("tests") == "3"
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert failed == ["#2 kill_runtime"]
    assert paths["timeline"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_assert_ok_names_the_fault_that_did_not_converge() -> None:
    result(ok=True).assert_ok()
    with pytest.raises(AssertionError, match=r"#2 kill_runtime: did not converge within 40s"):
        result(ok=False).assert_ok()


def test_an_unexpected_restart_fails_its_step() -> None:
    s = StepOutcome(ChaosStep(1, "sigkill", ("ledger",)), 0, 0, 2.0, 30, ("ledger", "watcher"), ("watcher",))
    assert not s.ok


# -- the workload itself -----------------------------------------------------------------------

@pytest.fixture
def ledger_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    spec = importlib.util.spec_from_file_location("ledger_app", LEDGER_APP)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "PATH", str(tmp_path / "ledger.log"))
    return mod


def test_the_ledger_and_the_checker_agree_on_the_checksum(ledger_app: ModuleType) -> None:
    assert ledger_app.checksum("12", "abc") == checksum(12, "abc")


def test_the_ledger_cuts_a_torn_tail_at_start(ledger_app: ModuleType) -> None:
    path = Path(ledger_app.PATH)
    whole = line(1, 1) + line(1, 2)
    path.write_bytes(whole + b"3 abc" + b"\0" * 100)
    assert ledger_app.recover() == 105
    assert path.read_bytes() == whole
    assert ledger_app.recover() == 0
    ledger_app.append("3", payload_for(1, 3))
    assert sorted(LedgerFile.parse(path.read_bytes()).records) == [1, 2, 3]


@pytest.fixture
def served(ledger_app: ModuleType) -> Iterator[tuple[Any, ModuleType]]:
    import http.server
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ledger_app.Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    device = SimpleNamespace(url=lambda p, path="/": f"http://127.0.0.1:{port}/{path.lstrip('/')}")
    try:
        yield device, ledger_app
    finally:
        server.shutdown()
        server.server_close()


def test_the_client_counts_only_answered_appends_and_the_file_holds_them(served: tuple[Any, ModuleType]) -> None:
    device, app = served
    client = LedgerClient(device, seed=9, clock=time.monotonic, timeout=5).start()
    try:
        assert client.wait_for_ack_after(20, 30)
    finally:
        client.stop()
    v = check(9, client.history.acknowledged, client.history.unanswered,
              LedgerFile.parse(Path(app.PATH).read_bytes()))
    assert v.ok and v.acknowledged > 20 and v.stored >= v.acknowledged


def test_a_write_the_ledger_refuses_is_not_acknowledged(served: tuple[Any, ModuleType],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    device, app = served

    def full(seq: str, payload: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(app, "append", full)
    client = LedgerClient(device, seed=9, clock=time.monotonic, timeout=5)
    assert client._append(1) == "refused"
    assert client.history.acknowledged == []


def test_an_unreachable_ledger_is_refused_not_acknowledged() -> None:
    device = SimpleNamespace(url=lambda p, path="/": "http://127.0.0.1:9/append")
    assert LedgerClient(device, seed=1, clock=time.monotonic, timeout=2)._append(1) == "refused"


def test_power_is_a_capability_of_the_device_faults() -> None:
    assert {k.name for k in CATALOGUE if k.capability == POWER} == {"reboot", "power_cut"}
