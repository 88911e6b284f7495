"""Wall-clock jumps for the armstack runtime on a test device (put there by the armstack harness).

Adds the offset in seconds written in ``$ARMSTACK_CLOCK_FILE`` to ``time.time()`` and
``time.time_ns()``, as a jump of the realtime clock would; the monotonic clock is left alone,
as a jump leaves it on a real board. The file is read at most every 0.2 s; an absent or
unreadable one means no offset. (libfaketime would do this for every program, but the
Debian 12 build makes ``clock_nanosleep`` fail with EINVAL once the monotonic clock is
exempted, which breaks every ``time.sleep`` of Python 3.11.)
"""

import os
import time

_PATH = os.environ.get("ARMSTACK_CLOCK_FILE", "")
_EVERY = 0.2

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
