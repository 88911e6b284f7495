"""The chaos soak's timeline as a PNG a person reads at a glance.

One row per service, coloured by the runtime's state at each sample (green running/healthy,
amber starting/backoff/waiting, red exited/unhealthy, grey: no answer, e.g. mid power cut);
above them one band per fault, from injection to convergence (red when it did not converge);
below, the acknowledged records over time. matplotlib is optional (the ``test`` extra): without
it there is no picture and :func:`render` returns None.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.chaos import SoakResult

COLOURS = {"up": "#3a9d48", "between": "#e8a33d", "down": "#c8423b", "unknown": "#b0b0b0"}


def state_colour(state: str | None) -> str:
    """The colour of one sampled state."""
    if state in ("running", "healthy", "completed"):
        return COLOURS["up"]
    if state in ("starting", "backoff", "waiting", "created", "restarting"):
        return COLOURS["between"]
    if state is None:
        return COLOURS["unknown"]
    return COLOURS["down"]


def render(result: SoakResult, path: Path) -> Path | None:
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({s for _, states in result.states for s in states})
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(12, 2 + 0.5 * (len(services) + 2)), sharex=True,
                                      gridspec_kw={"height_ratios": [len(services) + 1, 1.5]})
    for row, svc in enumerate(services):
        for (t, states), nxt in zip(result.states, [*result.states[1:], None], strict=True):
            width = (nxt[0] if nxt else t + 1.0) - t
            top.broken_barh([(t, width)], (row - 0.4, 0.8), color=state_colour(states.get(svc)))
    faults_row = len(services)
    for s in result.steps:
        end = s.healed_at + (s.converged_after if s.converged_after is not None else s.bound)
        top.broken_barh([(s.injected_at, max(end - s.injected_at, 0.5))], (faults_row - 0.4, 0.8),
                        color=COLOURS["between"] if s.ok else COLOURS["down"])
        top.text(s.injected_at, faults_row + 0.5, s.step.fault, fontsize=6, rotation=30)
    top.set_yticks(range(len(services) + 1), [*services, "faults"])
    top.set_ylim(-0.6, faults_row + 1.6)
    fig.suptitle(result.summary(), fontsize=8)
    if result.history.samples:
        bottom.plot([t for t, _ in result.history.samples], [n for _, n in result.history.samples], color="#2c5d8f")
    bottom.set_ylabel("acknowledged")
    bottom.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
