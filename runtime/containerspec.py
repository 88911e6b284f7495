"""Translate a validated ``ServiceSpec`` into engine create parameters — pure, no engine calls.

Kept apart from the executor so the mapping (labels, mounts, healthcheck units, log rotation
defaults, network attachment) is unit tested with plain data. The executor feeds the result to
docker-py's low-level ``create_host_config`` / ``create_container``.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from runtime import labels as L
from runtime.compose.model import FileObjectKind, ServiceSpec, StackSpec, VolumeMount
from runtime.compose.syntax import ARCH_ALIASES, is_cdi_device, parse_platform

NANO = 1_000_000_000
DEFAULT_NETWORK = "default"
# The engine's default json-file driver never rotates: on an SD card that fills the disk.
DEFAULT_LOG_DRIVER = "json-file"
DEFAULT_LOG_OPTIONS = {"max-size": "10m", "max-file": "3"}
EXTRA_LABELS_ENV = "ARMSTACK_EXTRA_LABELS"


def extra_labels(environ: Mapping[str, str]) -> dict[str, str]:
    """Labels added to every object created (``ARMSTACK_EXTRA_LABELS=k=v,k2=v2``), e.g. for test sweeps."""
    return parse_extra_labels(environ.get(EXTRA_LABELS_ENV, ""))


def parse_extra_labels(raw: str) -> dict[str, str]:
    """``k=v,k2=v2`` as labels (blank items skipped, a bare key is an empty label)."""
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


def service_container_name(stack: StackSpec, service: str) -> str:
    """The engine-side name of a service's container: its ``container_name``, else compose v2 naming."""
    try:
        custom = stack.service(service).container_name
    except KeyError:
        custom = None
    return custom or container_name(stack.project, service)


def name_conflict(name: str, project: str, service: str, owner_labels: Mapping[str, str] | None) -> str | None:
    """Why the existing container called ``name`` blocks creating this service's, or None when nothing does.

    ``owner_labels`` are the labels of the container holding the name (None: the name is free).
    Only a container of this stack's own service is ours to replace; any other - another
    stack's, or one started by hand - is refused, as docker compose refuses it.
    """
    if owner_labels is None:
        return None
    if owner_labels.get(L.STACK) == project and owner_labels.get(L.SERVICE) == service:
        return None
    if L.STACK in owner_labels and L.SERVICE in owner_labels:
        owner = f"service {owner_labels[L.SERVICE]!r} of stack {owner_labels[L.STACK]!r}"
    else:
        owner = "a container this stack does not manage"
    return (f"The container name {name!r} of service {service!r} (container_name) is already used by {owner}. "
            "Remove or rename that container, or change container_name in the compose file.")


def platform_mismatch(platform: str, engine_os: str, engine_arch: str) -> str | None:
    """Why a service's ``platform`` cannot run on this engine, or None when it matches.

    The runtime drives one device's engine: an image for another architecture would need
    emulation the device usually lacks, so a mismatch is refused before anything is created.
    """
    want_os, want_arch, _variant = parse_platform(platform)
    have_arch = ARCH_ALIASES.get(engine_arch.lower(), engine_arch.lower())
    if want_os == engine_os.lower() and want_arch == have_arch:
        return None
    return (f"The platform {platform!r} does not match this device's engine ({engine_os}/{have_arch}). "
            f"Write 'platform: {engine_os}/{have_arch}', or remove 'platform:' and use an image built for "
            f"{have_arch}.")


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
    links: tuple[tuple[str, str], ...] = ()                   # (container, alias) on every network joined
    # HostConfig fields create_host_config has no parameter for, merged into its result as they are.
    host_raw: dict[str, Any] = field(default_factory=dict)
    # engine-side network -> endpoint settings (aliases, ipv4_address, ipv6_address) as
    # docker-py's create_endpoint_config / connect_container_to_network take them.
    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Secrets and configs copied into the container after create (never shown: repr=False).
    files: tuple[FileCopy, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class FileCopy:
    """A secret or config written into a created container, with its owner and mode: its
    ``content``, or the host file at ``path`` (read by the executor, at create)."""

    target: str
    content: bytes | None = field(default=None, repr=False)
    path: str | None = None
    uid: int = 0
    gid: int = 0
    mode: int = 0o444


def file_mounts(stack: StackSpec, spec: ServiceSpec) -> tuple[list[str], list[FileCopy]]:
    """Binds and copies for a service's secrets and configs, as compose does without swarm: a
    ``file:`` source is bind-mounted read-only; inline or environment content (or a file that
    needs its own uid, gid or mode) is copied in at create."""
    binds: list[str] = []
    copies: list[FileCopy] = []
    kinds: tuple[tuple[FileObjectKind, Any], ...] = (("secret", spec.secrets), ("config", spec.configs))
    for kind, mounts in kinds:
        for m in mounts:
            obj = stack.file_object(kind, m.source)
            custom = m.uid is not None or m.gid is not None or m.mode is not None
            if obj.file is not None and not custom:
                binds.append(f"{obj.file}:{m.target}:ro")
                continue
            copies.append(FileCopy(m.target, obj.content, obj.file if obj.content is None else None,
                                   int(m.uid or 0), int(m.gid or 0), 0o444 if m.mode is None else m.mode))
    return binds, copies


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
    params = CreateParams(name=service_container_name(stack, service), image=image_id)
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
    devices = [d for d in spec.devices if not is_cdi_device(d)]
    if devices:
        h["devices"] = devices
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
        bind = _bind_string(stack, m)
        if bind is not None:
            binds.append(bind)
        elif m.type == "tmpfs" and not (m.read_only or m.tmpfs_size is not None or m.tmpfs_mode is not None):
            tmpfs[m.target] = ""
        else:
            mounts.append(_mount(stack, m))
    for entry in spec.tmpfs:
        path, _, opts = entry.partition(":")
        tmpfs[path] = opts
    file_binds, copies = file_mounts(stack, spec)
    binds += file_binds
    params.files = tuple(copies)
    if binds:
        h["binds"] = binds
    if mounts:
        h["mounts"] = mounts
    if tmpfs:
        h["tmpfs"] = tmpfs
    _engine_settings(spec, c, h, params.host_raw)
    if spec.volumes_from:
        h["volumes_from"] = [
            attached.get(vf.service, service_container_name(stack, vf.service)) + (":ro" if vf.read_only else "")
            for vf in spec.volumes_from
        ]

    for key, mode in (("ipc_mode", spec.ipc), ("pid_mode", spec.pid)):
        if mode and mode.startswith("service:"):
            other = mode.split(":", 1)[1]
            h[key] = "container:" + attached.get(other, service_container_name(stack, other))
    joined = spec.network_service
    if joined is not None:
        h["network_mode"] = "container:" + attached.get(joined, service_container_name(stack, joined))
    else:
        if spec.hostname:
            c["hostname"] = spec.hostname
        if spec.domainname:
            c["domainname"] = spec.domainname
        if spec.mac_address:
            c["mac_address"] = spec.mac_address
        exposed: list[tuple[int, str]] = [(p.target, p.protocol) for p in spec.ports]
        for key in spec.expose:
            port, _, proto = key.partition("/")
            exposed.append((int(port), proto))
        if exposed:
            c["ports"] = list(dict.fromkeys(exposed))
        if spec.ports:
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
        if spec.links:
            # As docker compose: "container:alias" in HostConfig.Links (the default bridge) and
            # in the endpoint of every network joined (user-defined networks).
            # Each link also answers to the service's numbered name and to the container's name,
            # as compose names them (`db:db`, `db-1`, `<project>-db-1`).
            links: list[tuple[str, str]] = []
            for target, alias in spec.links:
                cname = service_container_name(stack, target)
                for name in (alias, f"{target}-1", cname):
                    if (cname, name) not in links:
                        links.append((cname, name))
            params.links = tuple(links)
            h["links"] = list(params.links)
    return params


def _bind_string(stack: StackSpec, m: VolumeMount) -> str | None:
    """The ``Binds`` entry of a mount, or None when it needs the Mount API (compose's rule).

    The Binds form is preferred because it creates a missing host directory; options only the
    Mount API has (bind propagation or ``create_host_path: false``, volume nocopy/subpath) need
    a ``Mounts`` entry instead.
    """
    if m.type == "bind" and m.source and m.create_host_path and not m.propagation:
        source = m.source
    elif m.type == "volume" and m.source and not (m.nocopy or m.subpath):
        source = stack.volume_name(m.source)
    else:
        return None
    options = ["ro" if m.read_only else "rw"]
    if m.selinux:
        options.append(m.selinux)
    return f"{source}:{m.target}:{','.join(options)}"


def _mount(stack: StackSpec, m: VolumeMount) -> dict[str, Any]:
    """A ``Mounts`` entry (engine API field names) for a mount the Binds form cannot express."""
    out: dict[str, Any] = {"Target": m.target, "Type": m.type, "ReadOnly": m.read_only}
    if m.type == "bind":
        out["Source"] = m.source
        out["BindOptions"] = {"CreateMountpoint": m.create_host_path}
        if m.propagation:
            out["BindOptions"]["Propagation"] = m.propagation
    elif m.type == "volume":
        if m.source:
            out["Source"] = stack.volume_name(m.source)
        options: dict[str, Any] = {}
        if m.nocopy:
            options["NoCopy"] = True
        if m.subpath:
            options["Subpath"] = m.subpath
        if options:
            out["VolumeOptions"] = options
    elif m.type == "tmpfs":
        tmpfs_options: dict[str, Any] = {}
        if m.tmpfs_size is not None:
            tmpfs_options["SizeBytes"] = m.tmpfs_size
        if m.tmpfs_mode is not None:
            tmpfs_options["Mode"] = m.tmpfs_mode
        if tmpfs_options:
            out["TmpfsOptions"] = tmpfs_options
    return out


# ServiceSpec field -> create_host_config keyword, for values passed on as they are.
_HOST_SCALARS = {
    "shm_size": "shm_size", "pids_limit": "pids_limit", "cpu_shares": "cpu_shares", "cpu_quota": "cpu_quota",
    "cpu_period": "cpu_period", "cpu_rt_runtime": "cpu_rt_runtime", "cpu_rt_period": "cpu_rt_period",
    "cpuset": "cpuset_cpus", "cpu_count": "cpu_count", "cpu_percent": "cpu_percent",
    "mem_reservation": "mem_reservation", "memswap_limit": "memswap_limit", "mem_swappiness": "mem_swappiness",
    "oom_score_adj": "oom_score_adj", "pid": "pid_mode", "ipc": "ipc_mode", "uts": "uts_mode",
    "userns_mode": "userns_mode", "cgroup": "cgroupns", "runtime": "runtime", "cgroup_parent": "cgroup_parent",
}
_HOST_LISTS = {
    "extra_hosts": "extra_hosts", "dns": "dns", "dns_search": "dns_search", "dns_opt": "dns_opt",
    "group_add": "group_add", "device_cgroup_rules": "device_cgroup_rules",
}
_BLKIO_LISTS = (
    ("weight_device", "blkio_weight_device", "Weight"),
    ("device_read_bps", "device_read_bps", "Rate"),
    ("device_read_iops", "device_read_iops", "Rate"),
    ("device_write_bps", "device_write_bps", "Rate"),
    ("device_write_iops", "device_write_iops", "Rate"),
)


def _engine_settings(spec: ServiceSpec, c: dict[str, Any], h: dict[str, Any], raw: dict[str, Any]) -> None:
    """The keys docker compose maps straight onto container and host config fields."""
    if spec.tty:
        c["tty"] = True
    if spec.stdin_open:
        c["stdin_open"] = True
    if spec.platform:
        c["platform"] = spec.platform
    for name, key in _HOST_SCALARS.items():
        value = getattr(spec, name)
        if value is not None:
            h[key] = value
    for name, key in _HOST_LISTS.items():
        values = getattr(spec, name)
        if values:
            h[key] = list(values)
    if spec.init is not None:
        h["init"] = spec.init
    if spec.read_only:
        h["read_only"] = True
    if spec.oom_kill_disable:
        h["oom_kill_disable"] = True
    if spec.sysctls:
        h["sysctls"] = dict(spec.sysctls)
    if spec.storage_opt:
        h["storage_opt"] = dict(spec.storage_opt)
    if spec.ulimits:
        h["ulimits"] = [{"name": u.name, "soft": u.soft, "hard": u.hard} for u in spec.ulimits]
    security = [o for o in spec.security_opt if o != "systempaths=unconfined"]
    if security:
        h["security_opt"] = security
    if len(security) != len(spec.security_opt):
        # As docker compose (and `docker run --security-opt systempaths=unconfined`).
        raw["MaskedPaths"] = []
        raw["ReadonlyPaths"] = []
    if spec.annotations:
        raw["Annotations"] = dict(spec.annotations)
    requests: list[dict[str, Any]] = [
        {"driver": r.driver, "count": 0 if r.count is None else r.count, "device_ids": list(r.device_ids),
         "capabilities": [list(r.capabilities)], "options": dict(r.options)}
        for r in spec.device_requests
    ]
    cdi = [d for d in spec.devices if is_cdi_device(d)]
    if cdi:
        requests.append({"driver": "cdi", "device_ids": cdi})
    if requests:
        h["device_requests"] = requests
    blkio = spec.blkio_config
    if blkio is not None:
        if blkio.weight:
            h["blkio_weight"] = blkio.weight
        for name, key, unit in _BLKIO_LISTS:
            entries = getattr(blkio, name)
            if entries:
                h[key] = [{"Path": e.path, unit: e.value} for e in entries]


def dependencies_of(spec: ServiceSpec) -> set[str]:
    """Services that must exist before this one: depends_on, network_mode/ipc/pid service:X, volumes_from."""
    deps = {d.service for d in spec.depends_on}
    deps.update(vf.service for vf in spec.volumes_from)
    deps.update(spec.joined_services)
    return deps


# Engine API versions that first honour a create field; an older engine drops the field silently.
_MIN_API = {"annotations": "1.43", "volume.subpath": "1.45"}


def api_too_old(spec: ServiceSpec, api_version: str) -> str | None:
    """Why this engine would silently drop a setting of ``spec``, or None when it honours them all."""
    used = []
    if spec.annotations:
        used.append("annotations")
    if any(m.subpath for m in spec.volumes):
        used.append("volume.subpath")
    missing = [(key, _MIN_API[key]) for key in used if _version(api_version) < _version(_MIN_API[key])]
    if not missing:
        return None
    needs = ", ".join(f"'{key}' needs API {version}" for key, version in missing)
    return (f"Service {spec.name!r} uses settings this engine (API {api_version}) would ignore: {needs}. "
            "Upgrade the Docker engine, or remove the setting.")


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def files_archive(entries: Sequence[tuple[FileCopy, bytes]]) -> bytes:
    """A tar, to extract at ``/`` of a created container, holding each copy with its owner and
    mode, and the directories leading to it (0755, root) so it lands wherever its target is."""
    buf = io.BytesIO()
    made: set[str] = set()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for copy, content in entries:
            parts = posixpath.normpath(copy.target).strip("/").split("/")
            for depth in range(1, len(parts)):
                directory = "/".join(parts[:depth])
                if directory not in made:
                    made.add(directory)
                    info = tarfile.TarInfo(directory)
                    info.type, info.mode = tarfile.DIRTYPE, 0o755
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            info.size, info.mode, info.uid, info.gid = len(content), copy.mode, copy.uid, copy.gid
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()
