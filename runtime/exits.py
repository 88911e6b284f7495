"""What a service's exit means, and which restart policy governs it: the one home of both.

Compose leaves a service without ``restart:`` down after it exits. A device has nobody to notice,
so the runtime supervises such a service under a default policy (``always`` unless the operator
asks for strict compose semantics with ``--default-restart no`` / ``ARMSTACK_DEFAULT_RESTART``),
except one-shot jobs: a service that another waits for with ``service_completed_successfully``
is a job, and a job that exits 0 is done, not crashed.

Every caller asks here:

- :func:`with_default_restart` resolves the policy of every service once, when a stack is loaded
  for running, so the planner, the supervisor, the status and ``validate`` agree;
- :func:`exit_kind` classifies a stopped container as ``completed`` / ``crashed`` /
  ``stopped`` (by the runtime, on purpose);
- :func:`wants_restart` answers whether a stopped container is started again.

Pure: plain data in, plain data out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Literal, cast, get_args

from runtime.compose.model import RestartMode, RestartPolicy, ServiceSpec, StackSpec
from runtime.observed import ObservedContainer, ServiceRuntime

DEFAULT_RESTART_ENV = "ARMSTACK_DEFAULT_RESTART"
DEFAULT_RESTART: RestartMode = "always"
RESTART_MODES: tuple[RestartMode, ...] = get_args(RestartMode)

ExitKind = Literal["completed", "crashed", "stopped"]


def parse_default_restart(value: str, *, where: str) -> RestartMode:
    """A ``--default-restart`` value; ValueError naming ``where`` it came from otherwise."""
    text = value.strip()
    if text not in RESTART_MODES:
        raise ValueError(f"{where}: invalid default restart policy {value!r}: expected one of "
                         f"{', '.join(RESTART_MODES)}")
    return cast(RestartMode, text)


def default_restart_from(environ: Mapping[str, str], flag: str | None) -> RestartMode:
    """The default policy: the flag, else the environment variable, else ``always``."""
    if flag is not None:
        return parse_default_restart(flag, where="--default-restart")
    raw = environ.get(DEFAULT_RESTART_ENV)
    if raw:
        return parse_default_restart(raw, where=DEFAULT_RESTART_ENV)
    return DEFAULT_RESTART


def jobs(stack: StackSpec) -> frozenset[str]:
    """Services another service waits for with ``service_completed_successfully``."""
    return frozenset(d.service for s in stack.services for d in s.depends_on
                     if d.condition == "service_completed_successfully")


def effective_restart(spec: ServiceSpec, default: RestartMode, *, is_job: bool) -> RestartPolicy:
    """The policy a service is supervised under; an undeclared one is marked ``declared=False``."""
    if spec.restart.declared:
        return spec.restart
    # A job is restarted only when it failed: its success is what its dependants wait for.
    mode: RestartMode = "on-failure" if is_job and default != "no" else default
    return RestartPolicy(mode, declared=False)


def with_default_restart(stack: StackSpec, default: RestartMode = DEFAULT_RESTART) -> StackSpec:
    """The stack with every undeclared restart policy resolved (restart is not in the config hash)."""
    job_names = jobs(stack)
    services = tuple(
        dataclasses.replace(s, restart=effective_restart(s, default, is_job=s.name in job_names))
        for s in stack.services
    )
    return dataclasses.replace(stack, services=services)


def describe_restart(policy: RestartPolicy) -> str:
    """``always``, ``on-failure:3``, or ``always (default)`` when the file did not say."""
    text = policy.mode + (f":{policy.max_retries}" if policy.max_retries is not None else "")
    return text if policy.declared else f"{text} (default)"


def failed(container: ObservedContainer) -> bool:
    """Whether a stopped container's end was a failure (non-zero exit, OOM kill, dead)."""
    return container.status == "dead" or container.oom_killed or container.exit_code not in (None, 0)


def completed(container: ObservedContainer, policy: RestartPolicy) -> bool:
    """A one-shot job that finished: exited 0 under a policy that does not restart a success."""
    return (container.status == "exited" and container.exit_code == 0 and not container.oom_killed
            and policy.mode in ("no", "on-failure"))


def exit_kind(container: ObservedContainer, policy: RestartPolicy, *, stopped_by_us: bool) -> ExitKind:
    """What a stopped container's exit means: done, a crash, or our own stop."""
    if stopped_by_us:
        return "stopped"
    return "completed" if completed(container, policy) else "crashed"


def wants_restart(container: ObservedContainer, restart: RestartPolicy, runtime: ServiceRuntime) -> bool:
    """Whether a stopped container should be started again under its restart policy."""
    if container.status == "created":
        return True  # never started: the Create that made it did not finish
    if restart.mode in ("always", "unless-stopped"):
        # unless-stopped == always here: a stop by hand goes through the supervisor, which
        # then stops desiring the service rather than fighting the restart.
        return True
    if restart.mode == "on-failure":
        return failed(container) and (restart.max_retries is None or runtime.restarts < restart.max_retries)
    return False
