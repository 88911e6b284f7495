"""Compose profiles: which services are part of the stack.

A service with no ``profiles:`` is always part of it; one with profiles only when one of them
is enabled (``--profile NAME``, else ``COMPOSE_PROFILES=a,b``; ``*`` enables all). As in
compose, an enabled service that needs a disabled one (``depends_on`` unless
``required: false``, ``volumes_from``, ``network_mode``/``ipc``/``pid: service:X``) is an error: the stack
would be started without something it cannot run without.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict, LineList

_PROFILE = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")
VARIABLE = "COMPOSE_PROFILES"   # the profiles enabled when none are given, a,b


def active_profiles(explicit: Sequence[str] | None, env: Mapping[str, str]) -> tuple[str, ...]:
    """The enabled profiles: those given (``--profile``), else ``COMPOSE_PROFILES``."""
    names = list(explicit or ())
    if not names:
        names = env.get(VARIABLE, "").split(",")
    out: list[str] = []
    for name in names:
        for part in name.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return tuple(out)


def select_services(report: Report, services: LineDict, profiles: Sequence[str]) -> LineDict:
    """``services`` without those whose profiles are all disabled; their ``profiles:`` key is removed."""
    enabled = LineDict()
    enabled.line = services.line
    disabled: dict[str, tuple[str, ...]] = {}
    for key, node in services.items():
        own = _profiles_of(report, str(key), node)
        if own and "*" not in profiles and not set(own) & set(profiles):
            disabled[str(key)] = own
            continue
        if isinstance(node, dict) and "profiles" in node:
            del node["profiles"]
        enabled[key] = node
        if key in services.key_lines:
            enabled.key_lines[key] = services.key_lines[key]
    if disabled:
        for name, node in enabled.items():
            if isinstance(node, LineDict):
                _check_needs(report, str(name), node, disabled)
    return enabled


def _profiles_of(report: Report, service: str, node: Any) -> tuple[str, ...]:
    if not isinstance(node, dict) or node.get("profiles") is None:
        return ()
    value = node["profiles"]
    line = node.line_of("profiles") if isinstance(node, LineDict) else None
    if not isinstance(value, list):
        report.error(f"expected a list of profile names such as [debug], found {value!r}", service=service,
                     field="profiles", line=line)
        return ()
    names: list[str] = []
    for index, item in enumerate(value):
        where = value.line_of(index) if isinstance(value, LineList) else line
        if not isinstance(item, str) or not _PROFILE.fullmatch(item):
            report.error(f"invalid profile name {item!r}: expected letters, digits, '.', '_' and '-', starting "
                         "with a letter or digit", service=service, field="profiles", line=where)
            continue
        names.append(item)
    return tuple(names)


def _hint(name: str, profiles: tuple[str, ...]) -> str:
    listed = ", ".join(profiles)
    return (f"'{name}' is only in the profile(s) {listed}, which are not enabled; enable one "
            f"(--profile {profiles[0]} or {VARIABLE}={profiles[0]}), or remove the reference")


def _check_needs(report: Report, service: str, node: LineDict, disabled: Mapping[str, tuple[str, ...]]) -> None:
    """Report, and take out, references to disabled services (so they are not reported twice)."""
    deps = node.get("depends_on")
    if isinstance(deps, LineDict):
        for dep in list(deps):
            if str(dep) not in disabled:
                continue
            settings = deps[dep]
            if isinstance(settings, dict) and settings.get("required") is False:
                del deps[dep]  # compose starts the service without an optional dependency
                continue
            report.error(f"depends on {_hint(str(dep), disabled[str(dep)])}", service=service, field="depends_on",
                         line=deps.line_of(dep))
            del deps[dep]
    elif isinstance(deps, LineList):
        kept = LineList()
        kept.line = deps.line
        for index, dep in enumerate(deps):
            if isinstance(dep, str) and dep in disabled:
                report.error(f"depends on {_hint(dep, disabled[dep])}", service=service, field="depends_on",
                             line=deps.line_of(index))
                continue
            kept.append(dep)
            kept.item_lines.append(deps.line_of(index) or 0)
        node["depends_on"] = kept
    sources = node.get("volumes_from")
    if isinstance(sources, LineList):
        for index, item in enumerate(sources):
            name = str(item).split(":")[0]
            if name in disabled:
                report.error(f"takes volumes from {_hint(name, disabled[name])}", service=service,
                             field="volumes_from", line=sources.line_of(index))
        node["volumes_from"] = LineList(i for i in sources if str(i).split(":")[0] not in disabled)
    mode = node.get("network_mode")
    if isinstance(mode, str) and mode.startswith("service:") and mode[len("service:"):] in disabled:
        name = mode[len("service:"):]
        report.error(f"joins the network of {_hint(name, disabled[name])}", service=service, field="network_mode",
                     line=node.line_of("network_mode"))
        del node["network_mode"]
    for key in ("ipc", "pid"):
        mode = node.get(key)
        if isinstance(mode, str) and mode.startswith("service:") and mode[len("service:"):] in disabled:
            name = mode[len("service:"):]
            report.error(f"shares the {key} namespace of {_hint(name, disabled[name])}", service=service, field=key,
                         line=node.line_of(key))
            del node[key]
