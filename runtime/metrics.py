"""Health verdict and Prometheus metrics, as pure functions over a status document.

The input is the document :func:`runtime.state.build_status` makes (what ``status.json``
holds); nothing here does I/O, so the endpoint (``runtime.endpoint``), the systemd notifier
(``runtime.sdnotify``) and the tests share one definition of "healthy".

Healthy means: the supervisor finished its first apply, the last apply did not fail, the
last reconcile reached the engine (``engine_error``, added by
:meth:`runtime.statusboard.StatusBoard.report_engine_error`), and every service is running
(healthy, if it has a healthcheck) or is a job that completed.
Anything else is unhealthy, with a reason a person can act on.

Metrics, in the Prometheus text exposition format 0.0.4::

    armstack_healthy                                 1 when /healthz answers 200
    armstack_supervisor_ready                        1 once the first apply finished
    armstack_generation                              the generation applied last
    armstack_service_up{service}                     1 running/healthy or a completed job
    armstack_service_restarts_total{service}         restarts issued by the supervisor
    armstack_service_last_exit_code{service}         the last exit code (absent before one)
    armstack_service_crash_looping{service}          1 while down in a crash loop
    armstack_service_probation{service}              1 while a new release is on probation
    armstack_service_rollbacks_total{service}        rollbacks to the previous release
    armstack_disk_used_bytes, armstack_disk_total_bytes   the engine's card (absent if unknown)
    armstack_last_apply_success                      1 if the last apply succeeded
    armstack_last_apply_success_timestamp_seconds    when an apply last succeeded (epoch)
    armstack_last_apply_build_seconds{service}       build time of the service in the last apply
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# States in which a service counts as up (see runtime.servicestatus.state_of, runtime.report).
UP_STATES = frozenset({"running", "completed"})


@dataclass(frozen=True)
class Health:
    ok: bool
    reason: str   # "ok", or every problem found, as sentences joined by "; "


def health(doc: Mapping[str, Any] | None) -> Health:
    """Whether the stack is healthy according to ``doc``, and why not."""
    if not doc:
        return Health(False, "the supervisor has not published a status yet")
    sup = doc.get("supervisor") or {}
    if not sup.get("ready"):
        return Health(False, f"generation {doc.get('generation')} is still being applied for the first time")
    problems: list[str] = []
    if doc.get("engine_error"):
        problems.append(f"the last reconcile failed: {doc['engine_error']}")
    last = doc.get("last_apply") or {}
    if last and last.get("ok") is False:
        problems.append(f"the last apply (generation {last.get('generation')}) failed: {last.get('error')}")
    for name, svc in sorted((doc.get("services") or {}).items()):
        if svc.get("state") not in UP_STATES:
            problems.append(f"service {name} is {_describe(svc)}")
    if problems:
        return Health(False, "; ".join(problems))
    return Health(True, "ok")


def _describe(svc: Mapping[str, Any]) -> str:
    state = str(svc.get("state") or "unknown")
    words = _STATE_WORDS.get(state, state)
    extra = []
    if svc.get("last_exit") is not None and state not in ("starting", "unhealthy"):
        extra.append(f"last exit code {svc['last_exit']}")
    if svc.get("oom_killed") and state not in ("starting", "unhealthy"):
        extra.append("killed by the OOM killer")
    if svc.get("waiting_for"):
        extra.append("waiting for " + ", ".join(svc["waiting_for"]))
    return words + (f" ({'; '.join(extra)})" if extra else "")


_STATE_WORDS = {"crash-loop": "crash looping", "backoff": "waiting out its restart backoff",
                "missing": "missing (no container)"}


def render(doc: Mapping[str, Any] | None, *, last_success_at: float | None = None) -> str:
    """The metrics for ``doc`` in the Prometheus text format.

    ``last_success_at`` is when an apply last succeeded, which the caller remembers across
    documents (the status only carries the last apply); the last apply's own time is used if it
    succeeded and is newer.
    """
    out = _Writer()
    doc = doc or {}
    out.family("armstack_healthy", "gauge", "1 when every service is up and no apply is failing (/healthz 200).",
               [({}, 1 if health(doc).ok else 0)])
    sup = doc.get("supervisor") or {}
    out.family("armstack_supervisor_ready", "gauge", "1 once the supervisor finished its first apply.",
               [({}, 1 if sup.get("ready") else 0)])
    if doc.get("generation") is not None:
        out.family("armstack_generation", "gauge", "The generation of the compose file applied last.",
                   [({}, doc["generation"])])

    services = sorted((doc.get("services") or {}).items())

    def per_service(key: Any) -> list[tuple[dict[str, str], float | int | None]]:
        return [({"service": name}, key(svc)) for name, svc in services]

    out.family("armstack_service_up", "gauge", "1 when the service is running (healthy) or a job that completed.",
               per_service(lambda s: 1 if s.get("state") in UP_STATES else 0))
    out.family("armstack_service_restarts_total", "counter", "Restarts of the service issued by the supervisor.",
               per_service(lambda s: s.get("restarts") or 0))
    out.family("armstack_service_last_exit_code", "gauge", "Exit code of the service's last exit.",
               per_service(lambda s: s.get("last_exit")))
    out.family("armstack_service_crash_looping", "gauge", "1 while the service is down in a crash loop.",
               per_service(lambda s: 1 if s.get("state") == "crash-loop" else 0))
    out.family("armstack_service_probation", "gauge", "1 while the service's new release is on probation.",
               per_service(lambda s: 1 if s.get("probation") else 0))
    out.family("armstack_service_rollbacks_total", "counter", "Rollbacks of the service to its previous release.",
               per_service(lambda s: s.get("rollbacks") or 0))

    disk = doc.get("disk") or {}
    out.family("armstack_disk_used_bytes", "gauge", "Bytes used on the engine's storage.", [({}, disk.get("used"))])
    out.family("armstack_disk_total_bytes", "gauge", "Size of the engine's storage in bytes.",
               [({}, disk.get("total"))])

    last = doc.get("last_apply") or {}
    if last:
        out.family("armstack_last_apply_success", "gauge", "1 if the last apply succeeded.",
                   [({}, 1 if last.get("ok") else 0)])
    if last.get("ok") and isinstance(last.get("finished_at"), int | float):
        last_success_at = max(last_success_at or 0.0, float(last["finished_at"]))
    out.family("armstack_last_apply_success_timestamp_seconds", "gauge",
               "When an apply last succeeded (seconds since the epoch).", [({}, last_success_at)])
    report = last.get("report") or {}
    out.family("armstack_last_apply_build_seconds", "gauge", "Seconds spent building the service in the last apply.",
               [({"service": name}, (e or {}).get("build_seconds") or 0.0) for name, e in sorted(report.items())])
    return out.text()


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float | int | None]]) -> None:
        """HELP and TYPE of one family and its samples; a sample whose value is None is left out."""
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if value is None or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)
