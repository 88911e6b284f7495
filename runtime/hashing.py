"""The config hash: one string that changes exactly when a service's container must be replaced.

The executor stamps it on every container (``labels.CONFIG_HASH``); the planner recomputes it
from the desired state and recreates a container whose label differs. So the hash must cover
everything the engine bakes into a container at create time, and nothing else:

included
    every ``ServiceSpec`` field except the excluded ones below (new fields are included
    automatically, erring towards a recreate - but see "upgrades" below), the project name, the id of the image the
    container runs, the engine-side names of the volumes and networks it uses, and the current
    container id of every service it joins through ``network_mode: service:X``,
    ``ipc``/``pid: service:X`` or ``volumes_from: X`` (when X is recreated the joined namespace/volumes are gone, so the
    dependent must follow - and only then).
excluded
    ``depends_on``: start ordering, not container configuration.
    ``restart``: the supervisor applies restart policies itself (containers are created with
    the engine's policy ``no``), so changing it must not cost a recreate.
    ``build``: a build only matters through the image it produces, and that image's id is
    hashed; hashing the build spec too would recreate on edits that leave the image unchanged.
    ``post_start``, ``pre_stop``, ``attach``: the runtime acts on them around the container (hooks
    run by exec, output followed or not); the container itself is the same.
upgrades
    a field added to a model class after hash schema 1 is left out of the document while it has
    its default value. The hash of a service that does not use a newer key is then the one the
    previous release stamped on its container, so an upgrade does not recreate every container
    on the device; setting the key changes the hash as any other field does. ``SCHEMA_1_FIELDS``
    lists the fields that were hashed unconditionally and must stay so.
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

EXCLUDED_FIELDS = frozenset({"depends_on", "restart", "build", "post_start", "pre_stop", "attach"})
# The fields each hashed class had at schema 1: always hashed. Any other field counts only when
# it differs from its default (see "upgrades" above). Never add a name here.
SCHEMA_1_FIELDS: dict[str, frozenset[str]] = {
    "ServiceSpec": frozenset({
        "name", "image", "build", "command", "entrypoint", "environment", "ports", "volumes", "volumes_from",
        "depends_on", "restart", "healthcheck", "labels", "networks", "network_mode", "privileged", "devices",
        "cap_add", "cap_drop", "tmpfs", "user", "working_dir", "hostname", "mem_limit", "cpus", "logging",
        "stop_signal", "stop_grace_period",
    }),
    "PortSpec": frozenset({"target", "published", "protocol", "host_ip"}),
    "VolumeMount": frozenset({"type", "target", "source", "read_only"}),
    "VolumesFrom": frozenset({"service", "read_only"}),
    "Healthcheck": frozenset({"test", "interval", "timeout", "retries", "start_period"}),
    "LoggingSpec": frozenset({"driver", "options"}),
}


def attached_services(spec: ServiceSpec) -> tuple[str, ...]:
    """Services whose *container* (not just whose readiness) this service's container refers to."""
    names = [v.service for v in spec.volumes_from]
    names.extend(spec.joined_services)
    return tuple(sorted(set(names)))


def config_hash(stack: StackSpec, service: str, image_id: str, attached: Mapping[str, str]) -> str:
    """Hash of everything that requires a new container for ``service`` when it changes.

    ``attached`` maps service name -> current container id; only the services this one joins
    (see :func:`attached_services`) are read, so passing the ids of the whole stack is fine.
    A joined service without a container hashes as ``""``.
    """
    spec = stack.service(service)
    fields = {name: value for name, value in _plain(spec).items() if name not in EXCLUDED_FIELDS}
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
    if spec.secrets or spec.configs:
        # A changed inline or environment value must reach the container: its digest (never the
        # value) is hashed. A file source is bind-mounted, so its path is what the container has.
        doc["files"] = {f"{kind}:{m.source}": _source_digest(stack, kind, m.source)
                        for kind, mounts in (("secret", spec.secrets), ("config", spec.configs)) for m in mounts}
    return digest(doc)


def _source_digest(stack: StackSpec, kind: str, name: str) -> str:
    obj = stack.file_object("secret" if kind == "secret" else "config", name)
    if obj.content is not None:
        return "sha256:" + hashlib.sha256(obj.content).hexdigest()
    return "file:" + (obj.file or "")


def digest(doc: Any) -> str:
    """sha256 over the canonical JSON of ``doc`` (sorted keys, no whitespace), truncated."""
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()[:HASH_LENGTH]


def _plain(value: Any) -> Any:
    """Dataclasses and tuples as JSON-able values, keeping field names so reordered fields hash the same."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        always = SCHEMA_1_FIELDS.get(type(value).__name__, frozenset())
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if f.name in always or not _is_default(f, getattr(value, f.name))
        }
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _is_default(f: dataclasses.Field[Any], value: Any) -> bool:
    if f.default is not dataclasses.MISSING:
        return bool(value == f.default)
    if f.default_factory is not dataclasses.MISSING:
        return bool(value == f.default_factory())
    return False  # a required field is always hashed
