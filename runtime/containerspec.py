"""Translate a validated ``ServiceSpec`` into engine create parameters — pure, no engine calls.

Kept apart from the executor so the mapping (labels, mounts, healthcheck units, log rotation
defaults, network attachment) is unit tested with plain data. The executor feeds the result to
docker-py's low-level ``create_host_config`` / ``create_container``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from runtime import labels as L
from runtime.compose.model import ServiceSpec, StackSpec

NANO = 1_000_000_000
DEFAULT_NETWORK = "default"
# The engine's default json-file driver never rotates: on an SD card that fills the disk.
DEFAULT_LOG_DRIVER = "json-file"
DEFAULT_LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
EXTRA_LABELS_ENV = "ARMSTACK_EXTRA_LABELS"


def extra_labels(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Labels added to every object created (``ARMSTACK_EXTRA_LABELS=k=v,k2=v2``), e.g. for test sweeps."""
    raw = (os.environ if environ is None else environ).get(EXTRA_LABELS_ENV, "")
    out: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, value = item.partition("=")
        out[key.strip()] = value.strip()
    return out


def container_name(project: str, service: str) -> str:
    """Compose v2 naming, so ``docker compose ps`` on the device shows familiar names."""
    return f"{project}-{service}-1"


def service_networks(spec: ServiceSpec) -> tuple[str, ...]:
    """Stack-level networks a service joins; none when it uses a network_mode."""
    if spec.network_mode:
        return ()
    return spec.networks or (DEFAULT_NETWORK,)


def networks_by_priority(spec: ServiceSpec) -> tuple[str, ...]:
    """The service's networks in the order compose joins them: highest ``priority`` first, then
    by name. The first is the one the container is created on; the others are connected after."""
    priority = {a.network: a.priority for a in spec.network_settings}
    return tuple(sorted(service_networks(spec), key=lambda n: (-priority.get(n, 0), n)))


def endpoint_settings(spec: ServiceSpec, network: str) -> dict[str, Any]:
    """Endpoint settings of the service on one network: the service name and the file's aliases,
    and the fixed addresses, if any."""
    attachment = next((a for a in spec.network_settings if a.network == network), None)
    aliases = [spec.name]
    out: dict[str, Any] = {"aliases": aliases}
    if attachment is not None:
        aliases += [a for a in attachment.aliases if a not in aliases]
        if attachment.ipv4_address:
            out["ipv4_address"] = attachment.ipv4_address
        if attachment.ipv6_address:
            out["ipv6_address"] = attachment.ipv6_address
    return out


def stack_networks(stack: StackSpec) -> tuple[str, ...]:
    """Every stack-level network some service joins, in first-use order."""
    seen: list[str] = []
    for spec in stack.services:
        for net in service_networks(spec):
            if net not in seen:
                seen.append(net)
    return tuple(seen)


def container_labels(
    stack: StackSpec, service: str, config_hash: str, release: str, extra: Mapping[str, str]
) -> dict[str, str]:
    spec = stack.service(service)
    out = dict(spec.labels)
    out.update(extra)
    # Ours last: a service label must not be able to hijack ownership or the hash.
    out.update(
        {
            L.STACK: stack.project,
            L.SERVICE: service,
            L.CONFIG_HASH: config_hash,
            L.RELEASE: release,
            L.COMPOSE_PROJECT: stack.project,
            L.COMPOSE_SERVICE: service,
            L.COMPOSE_NUMBER: "1",
            L.COMPOSE_ONEOFF: "False",
        }
    )
    return out


def healthcheck_config(spec: ServiceSpec) -> dict[str, Any] | None:
    hc = spec.healthcheck
    if hc is None:
        return None
    if hc.test and hc.test[0] == "NONE":
        return {"test": ["NONE"]}
    return {
        "test": list(hc.test),
        "interval": int(hc.interval * NANO),
        "timeout": int(hc.timeout * NANO),
        "retries": hc.retries,
        "start_period": int(hc.start_period * NANO),
    }


def log_config(spec: ServiceSpec) -> dict[str, Any]:
    if spec.logging is None:
        return {"type": DEFAULT_LOG_DRIVER, "config": dict(DEFAULT_LOG_OPTIONS)}
    return {"type": spec.logging.driver, "config": dict(spec.logging.options)}


@dataclass
class CreateParams:
    """Everything ``create_container`` needs, split the way docker-py wants it."""

    name: str
    image: str
    container: dict[str, Any] = field(default_factory=dict)   # create_container kwargs
    host: dict[str, Any] = field(default_factory=dict)        # create_host_config kwargs
    first_network: str | None = None                          # engine-side, joined at create
    more_networks: tuple[str, ...] = ()                       # engine-side, connected afterwards
    aliases: tuple[str, ...] = ()
    # engine-side network -> endpoint settings (aliases, ipv4_address, ipv6_address) as
    # docker-py's create_endpoint_config / connect_container_to_network take them.
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)


def create_params(
    stack: StackSpec,
    service: str,
    image_id: str,
    config_hash: str,
    *,
    release: str = "",
    attached: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> CreateParams:
    """Create parameters for ``service``; ``attached`` maps services joined via network_mode/volumes_from to ids."""
    spec = stack.service(service)
    attached = attached or {}
    params = CreateParams(name=container_name(stack.project, service), image=image_id)
    c = params.container
    h = params.host
    c["labels"] = container_labels(stack, service, config_hash, release, extra or {})
    if spec.command is not None:
        c["command"] = list(spec.command)
    if spec.entrypoint is not None:
        c["entrypoint"] = list(spec.entrypoint)
    if spec.environment:
        c["environment"] = [f"{k}={v}" for k, v in spec.environment]
    for key, value in (("user", spec.user), ("working_dir", spec.working_dir), ("stop_signal", spec.stop_signal)):
        if value:
            c[key] = value
    c["stop_timeout"] = max(0, int(round(spec.stop_grace_period)))
    hc = healthcheck_config(spec)
    if hc is not None:
        c["healthcheck"] = hc

    # The runtime owns restarts (with backoff); an engine policy would race it.
    h["restart_policy"] = {"Name": "no"}
    h["log_config"] = log_config(spec)
    if spec.privileged:
        h["privileged"] = True
    if spec.devices:
        h["devices"] = list(spec.devices)
    if spec.cap_add:
        h["cap_add"] = list(spec.cap_add)
    if spec.cap_drop:
        h["cap_drop"] = list(spec.cap_drop)
    if spec.mem_limit:
        h["mem_limit"] = spec.mem_limit
    if spec.cpus:
        h["nano_cpus"] = int(spec.cpus * NANO)

    binds: list[str] = []
    mounts: list[dict[str, Any]] = []
    tmpfs: dict[str, str] = {}
    for m in spec.volumes:
        mode = "ro" if m.read_only else "rw"
        if m.type == "tmpfs":
            tmpfs[m.target] = ""
        elif m.type == "bind" and m.source:
            binds.append(f"{m.source}:{m.target}:{mode}")
        elif m.type == "volume" and m.source:
            binds.append(f"{stack.volume_name(m.source)}:{m.target}:{mode}")
        else:  # anonymous volume
            mounts.append({"Target": m.target, "Type": "volume", "ReadOnly": m.read_only})
    for entry in spec.tmpfs:
        path, _, opts = entry.partition(":")
        tmpfs[path] = opts
    if binds:
        h["binds"] = binds
    if mounts:
        h["mounts"] = mounts
    if tmpfs:
        h["tmpfs"] = tmpfs
    if spec.volumes_from:
        h["volumes_from"] = [
            attached.get(vf.service, container_name(stack.project, vf.service)) + (":ro" if vf.read_only else "")
            for vf in spec.volumes_from
        ]

    joined = spec.network_service
    if joined is not None:
        h["network_mode"] = "container:" + attached.get(joined, container_name(stack.project, joined))
    else:
        if spec.hostname:
            c["hostname"] = spec.hostname
        if spec.ports:
            c["ports"] = [(p.target, p.protocol) for p in spec.ports]
            bindings: dict[str, list[Any]] = {}
            for p in spec.ports:
                key = f"{p.target}/{p.protocol}"
                host_port = "" if p.published is None else str(p.published)
                bindings.setdefault(key, []).append((p.host_ip, host_port) if p.host_ip else host_port or None)
            h["port_bindings"] = bindings
        if spec.network_mode:
            h["network_mode"] = spec.network_mode
        else:
            ordered = networks_by_priority(spec)
            nets = [stack.network_name(n) for n in ordered]
            params.first_network = nets[0]
            params.more_networks = tuple(nets[1:])
            params.aliases = (service,)
            params.endpoints = {stack.network_name(n): endpoint_settings(spec, n) for n in ordered}
            h["network_mode"] = nets[0]
    return params


def dependencies_of(spec: ServiceSpec) -> set[str]:
    """Services that must exist before this one: depends_on, network_mode service:X, volumes_from."""
    deps = {d.service for d in spec.depends_on}
    deps.update(vf.service for vf in spec.volumes_from)
    if spec.network_service:
        deps.add(spec.network_service)
    return deps
