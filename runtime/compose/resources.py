"""Top-level ``volumes:`` and ``networks:``: each entry is null or a mapping of settings.

``external`` is a boolean, or (compose file v2) a mapping ``{name: engine-side-name}``.
``name`` is the engine-side name: of the external object, or of the one the stack creates
(instead of ``<project>_<key>``). Volumes: ``driver``, ``driver_opts``, ``labels``. Networks
also ``ipam`` (driver, config pools with subnet/gateway/ip_range/aux_addresses, options),
``internal``, ``attachable``, ``enable_ipv6``.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from runtime.compose.coerce import FieldError, as_bool, as_list, as_map, as_str, describe, name_key, pairs
from runtime.compose.model import IpamPool, IpamSpec, NetworkSpec, VolumeSpec
from runtime.compose.report import Report
from runtime.compose.yamlnodes import LineDict

T = TypeVar("T", VolumeSpec, NetworkSpec)

# Keys read, per section, beyond external/name/driver/labels (mapped to the engine as
# `docker compose` does: see runtime/executor.py).
_KNOWN = {
    "volumes": frozenset({"external", "name", "driver", "labels", "driver_opts"}),
    "networks": frozenset({"external", "name", "driver", "labels", "driver_opts", "ipam", "internal",
                           "attachable", "enable_ipv6"}),
}
_IGNORED = {"volumes": frozenset(), "networks": frozenset({"enable_ipv4"})}


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
    spec = as_map(settings, f"{section[:-1]} settings (external, name, driver, labels, ...)")
    external = False
    external_name: str | None = None
    custom_name: str | None = None
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
        if external:
            external_name = as_str(spec["name"])
        else:
            custom_name = as_str(spec["name"])   # compose creates it under exactly this name
    driver = None if spec.get("driver") is None else as_str(spec["driver"])
    labels = _pairs(spec, "labels", "label names to values")
    driver_opts = _pairs(spec, "driver_opts", "driver option names to values")
    for key in spec:
        if key in _KNOWN[section] or str(key).startswith("x-"):
            continue
        why = "is not supported and is ignored" if key in _IGNORED[section] else "is an unknown key and is ignored"
        report.warn(f"'{key}' {why}", field=f"{section}.{name}", line=spec.line_of(key))
    if cls is VolumeSpec:
        return cast(T, VolumeSpec(name=name, external=external, external_name=external_name, driver=driver,
                                  labels=labels, driver_opts=driver_opts, custom_name=custom_name))
    return cast(T, NetworkSpec(name=name, external=external, external_name=external_name, driver=driver,
                               labels=labels, driver_opts=driver_opts, custom_name=custom_name, ipam=_ipam(spec),
                               internal=_flag(spec, "internal"), attachable=_flag(spec, "attachable"),
                               enable_ipv6=_flag(spec, "enable_ipv6")))


def _pairs(spec: LineDict, key: str, what: str) -> tuple[tuple[str, str], ...]:
    if spec.get(key) is None:
        return ()
    try:
        found = pairs(spec[key], what, allow_bare=True)
    except FieldError as exc:
        raise FieldError(f"{key}: {exc}", exc.line or spec.line_of(key)) from exc
    return tuple(sorted({k: v or "" for k, v, _ in found}.items()))


def _flag(spec: LineDict, key: str) -> bool:
    if spec.get(key) is None:
        return False
    try:
        return as_bool(spec[key])
    except FieldError as exc:
        raise FieldError(f"{key}: {exc}", spec.line_of(key)) from exc


def _ipam(spec: LineDict) -> IpamSpec | None:
    """``ipam: {driver, config: [{subnet, gateway, ip_range, aux_addresses}], options}``."""
    if spec.get("ipam") is None:
        return None
    ipam = as_map(spec["ipam"], "IPAM settings (driver, config, options)")
    driver = None if ipam.get("driver") is None else as_str(ipam["driver"])
    pools: list[IpamPool] = []
    if ipam.get("config") is not None:
        for raw in as_list(ipam["config"], "a list of address pools (subnet, gateway, ip_range, aux_addresses)"):
            pool = as_map(raw, "an address pool (subnet, gateway, ip_range, aux_addresses)")
            for key in pool:
                if key not in ("subnet", "gateway", "ip_range", "aux_addresses"):
                    raise FieldError(f"ipam.config: unknown key {key!r}; expected subnet, gateway, ip_range or "
                                     "aux_addresses", pool.line_of(key))
            pools.append(IpamPool(
                subnet=None if pool.get("subnet") is None else as_str(pool["subnet"]),
                gateway=None if pool.get("gateway") is None else as_str(pool["gateway"]),
                ip_range=None if pool.get("ip_range") is None else as_str(pool["ip_range"]),
                aux_addresses=_pairs(pool, "aux_addresses", "host names to addresses"),
            ))
    return IpamSpec(driver=driver, config=tuple(pools), options=_pairs(ipam, "options", "IPAM driver options"))
