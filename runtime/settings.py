"""The runtime's settings: resolved once from the command line and the environment.

Every knob the runtime reads from the environment is read here and nowhere else, in one order:
the flag, then the environment variable, then the default. A bad value is a ``SettingsError``
naming the flag or variable (a usage error: exit 2), whichever command or component meets it
first, so ``armstack up`` and a ``Supervisor`` built in a test refuse the same settings alike.

The rest of the runtime takes a ``RuntimeSettings`` (or one of its fields) as an argument.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.compose.model import RestartMode
from runtime.containerspec import EXTRA_LABELS_ENV, parse_extra_labels
from runtime.disk import DiskConfigError, DiskPolicy, Threshold
from runtime.diskio import ENGINE_ROOT_ENV
from runtime.endpoint import LISTEN_ENV, EndpointError, ListenAddress, parse_listen
from runtime.errors import SettingsError
from runtime.exits import DEFAULT_RESTART, default_restart_from
from runtime.rollback import DEFAULT_PROBATION, ROLLBACK_MODES, RollbackMode, parse_probation

DATA_DIR_ENV = "ARMSTACK_DATA_DIR"
DEFAULT_DATA_DIR = "/data/armstack"
RELEASE_ENV = "ARMSTACK_RELEASE"
PROBATION_ENV = "ARMSTACK_PROBATION"
ROLLBACK_ENV = "ARMSTACK_ROLLBACK"
DISK_ENV = ("ARMSTACK_DISK_HIGH", "ARMSTACK_DISK_LOW", "ARMSTACK_KEEP_RELEASES", "ARMSTACK_BUILD_CACHE_BUDGET")
# What systemd hands a service it supervises (sd_notify and the watchdog), passed on as is.
SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


@dataclass(frozen=True)
class RuntimeSettings:
    """What the runtime was told by its flags and its environment, validated.

    ``environ`` is the environment compose files are interpolated with (docker compose reads
    the same process environment); ``release`` None means "the persisted release".
    """

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    extra_labels: Mapping[str, str] = field(default_factory=dict)
    release: str | None = None
    disk: DiskPolicy = field(default_factory=DiskPolicy)
    engine_root: str | None = None
    default_restart: RestartMode = DEFAULT_RESTART
    listen: ListenAddress | None = None
    color: bool | None = None
    docker_host: str = ""
    systemd: Mapping[str, str] = field(default_factory=dict)
    # Health-gated updates (runtime.rollback): seconds a replaced service is on probation
    # (0: off) and what a failed probation rolls back (the service's group, or the release).
    probation: float = DEFAULT_PROBATION
    rollback: RollbackMode = "service"
    environ: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace | Any, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Settings from parsed flags (missing attributes are unset flags) and ``environ``
        (None: the process environment, read once here). Raises ``SettingsError``."""
        env: Mapping[str, str] = dict(os.environ if environ is None else environ)

        def flag(name: str) -> Any:
            return getattr(args, name, None)

        def either(name: str, var: str) -> str | None:
            return flag(name) or env.get(var) or None

        disk = _disk_policy(flag, env)
        try:
            default_restart = default_restart_from(env, flag("default_restart"))
        except ValueError as exc:
            raise SettingsError(str(exc)) from exc
        listen_url = either("listen", LISTEN_ENV)
        try:
            listen = parse_listen(listen_url) if listen_url else None
        except EndpointError as exc:
            raise SettingsError(f"{'--listen' if flag('listen') else LISTEN_ENV}: {exc}") from exc
        probation, rollback = _rollback_settings(flag, env)
        release = flag("release")
        if release is None:
            release = env.get(RELEASE_ENV) or None
        if flag("no_color"):
            color: bool | None = False
        elif env.get("NO_COLOR", "") != "" or env.get("TERM") == "dumb":
            color = False   # no-color.org: any non-empty NO_COLOR
        else:
            color = None    # colour when the output is a terminal
        return cls(
            data_dir=Path(flag("data_dir") or env.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR),
            extra_labels=parse_extra_labels(env.get(EXTRA_LABELS_ENV, "")),
            release=release,
            disk=disk,
            engine_root=env.get(ENGINE_ROOT_ENV) or None,
            default_restart=default_restart,
            listen=listen,
            color=color,
            docker_host=env.get("DOCKER_HOST", ""),
            systemd={k: env[k] for k in SYSTEMD_ENV if k in env},
            probation=probation,
            rollback=rollback,
            environ=env,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> RuntimeSettings:
        """Settings with no flags given: the environment (None: the process's), then defaults."""
        return cls.from_args(argparse.Namespace(), environ)

    @property
    def engine_address(self) -> str:
        """Where the engine is looked for, as messages name it."""
        return self.docker_host or "the default socket"


def _rollback_settings(flag: Callable[[str], Any], env: Mapping[str, str]) -> tuple[float, RollbackMode]:
    """``--probation``/``ARMSTACK_PROBATION`` and ``--rollback``/``ARMSTACK_ROLLBACK``, validated."""
    raw, where = flag("probation"), "--probation"
    if raw is None:
        raw, where = env.get(PROBATION_ENV) or None, PROBATION_ENV
    probation = DEFAULT_PROBATION
    if raw is not None:
        try:
            probation = parse_probation(str(raw))
        except ValueError as exc:
            raise SettingsError(f"{where}={raw!r}: {exc}; fix or unset it.") from exc
    mode, where = flag("rollback"), "--rollback"
    if mode is None:
        mode, where = env.get(ROLLBACK_ENV) or None, ROLLBACK_ENV
    if mode is None:
        return probation, "service"
    if mode not in ROLLBACK_MODES:
        raise SettingsError(f"{where}={mode!r}: expected one of {', '.join(ROLLBACK_MODES)}; fix or unset it.")
    return probation, mode


_DISK_FIELDS = ("high", "low", "keep_releases", "build_cache_budget")


def _disk_policy(flag: Callable[[str], Any], env: Mapping[str, str]) -> DiskPolicy:
    """The disk policy; an error names the flag or variable each bad value came from."""
    given: dict[str, str | None] = {}
    where: dict[str, str] = {}
    for name, var in zip(_DISK_FIELDS, DISK_ENV, strict=True):
        option = "disk_" + name if name in ("high", "low") else name
        raw = flag(option)
        where[name] = "--" + option.replace("_", "-")
        if not raw:
            raw, where[name] = env.get(var) or None, var
        given[name] = raw
        if raw is None:
            continue
        try:   # each alone first, so the message names the one setting that is wrong
            if name in ("high", "low"):
                Threshold.parse(raw)
            else:
                DiskPolicy.from_settings(**{name: raw})
        except (DiskConfigError, ValueError) as exc:
            raise SettingsError(f"{where[name]}={raw!r}: {exc}; fix or unset it.") from exc
    try:
        return DiskPolicy.from_settings(**given)
    except DiskConfigError as exc:
        raise SettingsError(f"{where['high']} and {where['low']}: {exc}; fix or unset them.") from exc
