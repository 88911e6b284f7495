"""Top-level networks and volumes as engine create parameters — pure, no engine calls.

The mapping follows ``docker compose`` (v2, ``createNetworkIfNotExists`` / ``createVolume``):
``driver`` (engine default when unset), ``driver_opts`` as the driver's options, ``internal``,
``attachable``, ``enable_ipv6``, and an IPAM section only when the file gives an IPAM driver
or address pools (``subnet``, ``ip_range``, ``gateway``, ``aux_addresses``). Labels come from
``runtime.ownership.resource_labels`` (the runtime's ownership labels win over the file's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.compose.model import NetworkSpec, VolumeSpec
from runtime.ownership import resource_labels


def network_create_kwargs(project: str, stack_name: str, spec: NetworkSpec | None,
                          extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of docker-py's ``APIClient.create_network`` (without the name)."""
    spec = spec or NetworkSpec(stack_name)
    kw: dict[str, Any] = {
        "driver": spec.driver or "bridge",
        "labels": resource_labels("network", project, stack_name, user=dict(spec.labels), extra=extra),
        "check_duplicate": True,
    }
    if spec.driver_opts:
        kw["options"] = dict(spec.driver_opts)
    if spec.internal:
        kw["internal"] = True
    if spec.attachable:
        kw["attachable"] = True
    if spec.enable_ipv6:
        kw["enable_ipv6"] = True
    if spec.ipam is not None and (spec.ipam.driver or spec.ipam.config or spec.ipam.options):
        pools = []
        for p in spec.ipam.config:
            pool: dict[str, Any] = {}
            if p.subnet:
                pool["Subnet"] = p.subnet
            if p.ip_range:
                pool["IPRange"] = p.ip_range
            if p.gateway:
                pool["Gateway"] = p.gateway
            if p.aux_addresses:
                pool["AuxiliaryAddresses"] = dict(p.aux_addresses)
            pools.append(pool)
        kw["ipam"] = {"Driver": spec.ipam.driver or "default", "Config": pools,
                      "Options": dict(spec.ipam.options) or None}
    return kw


def volume_create_kwargs(project: str, stack_name: str, spec: VolumeSpec | None,
                         extra: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Keyword arguments of docker-py's ``APIClient.create_volume`` (without the name)."""
    spec = spec or VolumeSpec(stack_name)
    kw: dict[str, Any] = {
        "driver": spec.driver or "local",
        "labels": resource_labels("volume", project, stack_name, user=dict(spec.labels), extra=extra),
    }
    if spec.driver_opts:
        kw["driver_opts"] = dict(spec.driver_opts)
    return kw
