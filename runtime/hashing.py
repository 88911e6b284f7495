"""The config hash: one string that changes exactly when a service's container must be replaced.

The executor stamps it on every container (``labels.CONFIG_HASH``); the planner recomputes it
from the desired state and recreates a container whose label differs. So the hash must cover
everything the engine bakes into a container at create time, and nothing else:

included
    every ``ServiceSpec`` field except the excluded ones below (new fields are included
    automatically, erring towards a recreate; those in ``HASHED_WHEN_SET`` only when not at
    their default, so adding them did not change existing hashes), the project name, the id of the image the
    container runs, the engine-side names of the volumes and networks it uses, and the current
    container id of every service it joins through ``network_mode: service:X`` or
    ``volumes_from: X`` (when X is recreated the joined namespace/volumes are gone, so the
    dependent must follow - and only then).
excluded
    ``depends_on``: start ordering, not container configuration.
    ``restart``: the supervisor applies restart policies itself (containers are created with
    the engine's policy ``no``), so changing it must not cost a recreate.
    ``build``: a build only matters through the image it produces, and that image's id is
    hashed; hashing the build spec too would recreate on edits that leave the image unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from runtime.compose.model import ServiceSpec, StackSpec

# Bump when the hashed document changes shape, so old containers are recreated once rather
# than compared against a hash computed a different way.
HASH_SCHEMA = 1
HASH_LENGTH = 32  # hex digits: 128 bits, collisions are not a practical concern

EXCLUDED_FIELDS = frozenset({"depends_on", "restart", "build"})
# Fields added after HASH_SCHEMA 1 shipped: hashed only when set, so a container whose spec
# does not use them keeps its hash (an upgrade must not recreate every container).
HASHED_WHEN_SET = frozenset({"network_settings"})


def attached_services(spec: ServiceSpec) -> tuple[str, ...]:
    """Services whose *container* (not just whose readiness) this service's container refers to."""
    names = [v.service for v in spec.volumes_from]
    if spec.network_service:
        names.append(spec.network_service)
    return tuple(sorted(set(names)))


def config_hash(stack: StackSpec, service: str, image_id: str, attached: Mapping[str, str]) -> str:
    """Hash of everything that requires a new container for ``service`` when it changes.

    ``attached`` maps service name -> current container id; only the services this one joins
    (see :func:`attached_services`) are read, so passing the ids of the whole stack is fine.
    A joined service without a container hashes as ``""``.
    """
    spec = stack.service(service)
    fields = {
        f.name: _plain(getattr(spec, f.name))
        for f in dataclasses.fields(spec)
        if f.name not in EXCLUDED_FIELDS and not (f.name in HASHED_WHEN_SET and getattr(spec, f.name) == f.default)
    }
    doc = {
        "schema": HASH_SCHEMA,
        "project": stack.project,
        "service": fields,
        "image_id": image_id,
        "volumes": sorted(
            {stack.volume_name(v.source) for v in spec.volumes if v.type == "volume" and v.source}
        ),
        "networks": sorted({stack.network_name(n) for n in spec.networks}),
        "attached": {name: attached.get(name, "") for name in attached_services(spec)},
    }
    return digest(doc)


def digest(doc: Any) -> str:
    """sha256 over the canonical JSON of ``doc`` (sorted keys, no whitespace), truncated."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def _plain(value: Any) -> Any:
    """Dataclasses and tuples as JSON-able values, keeping field names so reordered fields hash the same."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
