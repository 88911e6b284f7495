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
