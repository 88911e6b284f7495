"""Top-level ``volumes:`` and ``networks:``: each entry is null or a mapping of settings.

``external`` is a boolean, or (compose file v2) a mapping ``{name: engine-side-name}``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from runtime.compose.coerce import FieldError, as_bool, as_map, as_str, describe, name_key, pairs
from runtime.compose.model import NetworkSpec, VolumeSpec
from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict

T = TypeVar("T", VolumeSpec, NetworkSpec)

_IGNORED = {
    "volumes": frozenset({"driver_opts"}),
    "networks": frozenset({"driver_opts", "ipam", "internal", "attachable", "enable_ipv6", "enable_ipv4"}),
}


def read_resources(report: Report, section: str, value: Any, line: int | None, cls: type[T]) -> tuple[T, ...]:
    """The entries of the top-level ``section`` ("volumes" or "networks") as ``cls`` objects."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        report.error(f"expected a mapping of {section[:-1]} names to settings, found {describe(value)}",
                     field=section, line=line)
        return ()
    node = value if isinstance(value, LineDict) else LineDict(value)
    found: list[T] = []
    for key, settings in node.items():
        name = str(key)
        if name.startswith("x-"):
            continue
        key_line = node.line_of(key)
        try:
            name_key(key, section[:-1])
            found.append(_read_one(report, section, name, settings, key_line, cls))
        except FieldError as exc:
            report.error(str(exc), field=f"{section}.{name}", line=exc.line or key_line)
        except Exception as exc:  # noqa: BLE001 - a bad file must never become a traceback
            report.error(f"could not read this entry ({type(exc).__name__}: {exc})",
                         field=f"{section}.{name}", line=key_line)
    return tuple(found)


def _read_one(report: Report, section: str, name: str, settings: Any, line: int | None, cls: type[T]) -> T:
    if settings is None:
        return cls(name=name)
    spec = as_map(settings, f"{section[:-1]} settings (external, name, driver, labels)")
    external = False
    external_name: str | None = None
    raw_external = spec.get("external")
    if isinstance(raw_external, dict):
        external = True
        if raw_external.get("name") is not None:
            external_name = as_str(raw_external["name"])
    elif raw_external is not None:
        try:
            external = as_bool(raw_external)
        except FieldError as exc:
            raise FieldError(f"external: {exc}", spec.line_of("external")) from exc
    if spec.get("name") is not None:
        custom = as_str(spec["name"])
        if external:
            external_name = custom
        else:
            report.warn(f"'name' is ignored for a {section[:-1]} the stack creates; it is named "
                        "<project>_<name>. Mark it 'external: true' to use an existing one",
                        field=f"{section}.{name}", line=spec.line_of("name"))
    driver = None if spec.get("driver") is None else as_str(spec["driver"])
    labels: tuple[tuple[str, str], ...] = ()
    if spec.get("labels") is not None:
        found = pairs(spec["labels"], "label names to values", allow_bare=True)
        labels = tuple(sorted({k: v or "" for k, v, _ in found}.items()))
    for key in spec:
        if key in ("external", "name", "driver", "labels") or str(key).startswith("x-"):
            continue
        why = "is not supported and is ignored" if key in _IGNORED[section] else "is an unknown key and is ignored"
        report.warn(f"'{key}' {why}", field=f"{section}.{name}", line=spec.line_of(key))
    return cls(name=name, external=external, external_name=external_name, driver=driver, labels=labels)
