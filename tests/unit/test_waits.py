"""wait_for: what keeps a wait going, what ends it, and what its timeout error says."""

from __future__ import annotations

import itertools

import pytest

from harness.errors import DeployError, FaultError, WaitTimeout
from harness.waits import wait_for


def test_returns_the_first_truthy_probe_result() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "done", 5, "the counter", interval=0.001) == "done"


def test_transient_errors_keep_the_wait_going() -> None:
    calls = itertools.count()

    def probe() -> bool:
        n = next(calls)
        if n == 0:
            raise FaultError("no container yet")
        if n == 1:
            raise ConnectionError("engine restarting")
        return True

    assert wait_for(probe, 5, "a flaky probe", interval=0.001) is True


def test_a_harness_error_ends_the_wait_at_once() -> None:
    calls = itertools.count()

    def probe() -> bool:
        next(calls)
        raise DeployError("the runtime exited", "bad file")

    with pytest.raises(DeployError):
        wait_for(probe, 60, "never", interval=0.001)
    assert next(calls) == 1


def test_timeout_says_what_it_waited_for_and_what_it_saw() -> None:
    def probe() -> bool:
        raise FaultError("service 'web' has no running container")

    with pytest.raises(WaitTimeout) as err:
        wait_for(probe, 0.01, "web to run", describe=lambda: "state of web: exited (137)", interval=0.001)
    text = str(err.value)
    assert "web to run" in text and "exited (137)" in text and "no running container" in text


# /proc/<pid>/net/tcp as a Python http.server on 0.0.0.0:8000 (LISTEN) with one client
# connection to port 80 (ESTABLISHED, 01), then tcp6 with [::]:9000 listening.
PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F40 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0
   1: 0100007F:A2C4 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0
  sl  local_address                         remote_address                        st tx_queue
   0: 00000000000000000000000000000000:2328 00000000000000000000000000000000:0000 0A 00000000:00000000
"""


def test_listening_ports_reads_only_listening_sockets() -> None:
    from harness.waits import listening_ports

    assert listening_ports(PROC_NET_TCP) == {8000, 9000}
    assert listening_ports("") == frozenset()
    assert listening_ports("garbage\n 0: nothex:zz 0:0 0A\n") == frozenset()


def test_first_match_counts_from_the_start_index() -> None:
    import re

    from harness.waits import first_match

    lines = ["web | starting", "web | listening on 8000", "web | listening on 8001"]
    pattern = re.compile(r"listening on (\d+)")
    assert first_match(lines, pattern) == "web | listening on 8000"
    assert first_match(lines, pattern, start=2) == "web | listening on 8001"
    assert first_match(lines, pattern, start=3) is None
