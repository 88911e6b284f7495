"""What the supervisor does about a reconcile round that raised unexpectedly (a bug).

The stack outlives it: the round is retried with a doubling delay (capped at the reconcile
interval), and the traceback is shown once per failure site, so the same bug every round does not
flood the log of a device.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass

RETRY_FIRST = 1.0    # seconds before retrying a reconcile that raised unexpectedly, doubling


@dataclass(frozen=True)
class RoundFailure:
    delay: float         # seconds until the round is retried
    trace: str           # the formatted traceback
    first: bool          # the first failure at this site: show the traceback
    message: str         # the error sentence of the round


class RoundFailures:
    """Reconciles in a row that raised unexpectedly, and the sites whose traceback was shown."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self._sites_shown: set[str] = set()

    def succeeded(self) -> None:
        self.in_a_row = 0

    def failed(self, exc: BaseException, interval: float) -> RoundFailure:
        self.in_a_row += 1
        cap = max(interval, RETRY_FIRST)
        delay = min(RETRY_FIRST * 2 ** (self.in_a_row - 1), cap)
        trace = "".join(traceback.format_exception(exc)).rstrip()
        frames = traceback.extract_tb(exc.__traceback__)
        site = f"{type(exc).__name__}@{frames[-1].filename}:{frames[-1].lineno}" if frames else type(exc).__name__
        first = site not in self._sites_shown
        self._sites_shown.add(site)
        message = (f"a reconcile failed unexpectedly ({type(exc).__name__}: {exc}); the stack keeps running and "
                   f"the reconcile is retried in {delay:g} s. Please report this with the log above.")
        return RoundFailure(delay, trace, first, message)
