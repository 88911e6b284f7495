"""Wall-clock jumps for the armstack runtime on a test device (put there by the armstack harness).

Adds the offset in seconds written in ``$ARMSTACK_CLOCK_FILE`` to ``time.time()`` and
``time.time_ns()``, as a jump of the realtime clock would; the monotonic clock is left alone,
as a jump leaves it on a real board. The file is read at most every 0.2 s; an absent or
unreadable one means no offset. (libfaketime would do this for every program, but the
Debian 12 build makes ``clock_nanosleep`` fail with EINVAL once the monotonic clock is
exempted, which breaks every ``time.sleep`` of Python 3.11.)

The start gate: with ``$ARMSTACK_START_GATE`` naming a file that is not there yet, the runtime
imports its modules (seconds under emulation) and then waits for the file before ``armstack up``
goes on: the harness starts the runtime's container first and puts the stack's cached images
into the engine meanwhile, so they are there when the runtime first plans (harness.device,
``_start_runtime``). Once the file is there (a restart, a later ``armstack apply``) nothing waits.
"""

import os
import time

_PATH = os.environ.get("ARMSTACK_CLOCK_FILE", "")
_EVERY = 0.2
_GATE = os.environ.get("ARMSTACK_START_GATE", "")
_GATE_WAIT = 600.0   # a harness gone before it opened the gate: go on without its images

if _PATH:
    _real_time, _real_time_ns, _monotonic = time.time, time.time_ns, time.monotonic
    _state = [0.0, -1.0]   # [offset, monotonic time of the next read]

    def _offset() -> float:
        now = _monotonic()
        if now >= _state[1]:
            try:
                with open(_PATH) as f:
                    _state[0] = float(f.read().strip() or 0)
            except (OSError, ValueError):
                _state[0] = 0.0
            _state[1] = now + _EVERY
        return _state[0]

    def _time() -> float:
        return _real_time() + _offset()

    def _time_ns() -> int:
        return _real_time_ns() + int(_offset() * 1e9)

    time.time = _time
    time.time_ns = _time_ns


def _wait_for_gate(path: str, limit: float) -> bool:
    """Wait (at most ``limit`` seconds) until ``path`` exists; whether it does."""
    until = time.monotonic() + limit   # never moved by the hook above
    while not os.path.exists(path):
        if time.monotonic() >= until:
            return False
        time.sleep(0.02)
    return True


if _GATE and not os.path.exists(_GATE):
    try:
        import runtime.cli  # noqa: F401  # what `armstack up` imports: the slow part of its start
        import runtime.supervisor  # noqa: F401
    except Exception:  # noqa: BLE001 - the runtime's own start reports what fails to import
        pass
    _wait_for_gate(_GATE, _GATE_WAIT)
