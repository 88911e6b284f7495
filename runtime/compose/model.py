"""The validated, immutable form of a compose file.

The loader turns YAML into these frozen dataclasses; everything after it (hashing, planning,
executing) works on them only. Paths are absolute, durations are seconds, sizes are bytes, and
mappings are sorted tuples of pairs so two equal specs compare (and hash) equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Pairs = tuple[tuple[str, str], ...]
DependencyCondition = Literal["service_started", "service_healthy", "service_completed_successfully"]
RestartMode = Literal["no", "always", "on-failure", "unless-stopped"]


# The name an inline Dockerfile (``build.dockerfile_inline``) is sent under in the build
# context; no file of the context has it, so a build path that does not send the text fails
# ("cannot locate the Dockerfile") instead of building some other Dockerfile.
INLINE_DOCKERFILE = ".armstack-inline.Dockerfile"


@dataclass(frozen=True)
class BuildSpec:
    context: str                 # absolute path of the build context directory
    dockerfile: str = "Dockerfile"  # relative to the context
    args: Pairs = ()
    target: str | None = None
    dockerfile_inline: str | None = None  # the Dockerfile's text (then ``dockerfile`` is INLINE_DOCKERFILE)
    labels: Pairs = ()           # image labels
    shm_size: int | None = None  # bytes, for RUN steps
    extra_hosts: Pairs = ()      # (host name, address) for RUN steps
    network: str | None = None   # network mode of RUN steps ("host", "none"...)
    no_cache: bool = False
    pull: bool = False           # always pull the FROM images


@dataclass(frozen=True)
class PortSpec:
    target: int
    published: int | None = None  # None: the engine picks a host port
    protocol: Literal["tcp", "udp"] = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class VolumeMount:
    type: Literal["volume", "bind", "tmpfs"]
    target: str
    source: str | None = None   # volume: the stack-level volume name (unprefixed); bind: absolute path
    read_only: bool = False
    propagation: str | None = None   # bind: rprivate, shared, slave...
    create_host_path: bool = True    # bind: create a missing source directory (the short syntax always does)
    selinux: str | None = None       # bind: "z" or "Z"
    nocopy: bool = False             # volume: do not copy the image's files into a new volume
    subpath: str | None = None       # volume: mount this directory of the volume
    tmpfs_size: int | None = None    # tmpfs: bytes
    tmpfs_mode: int | None = None    # tmpfs: permission bits


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class DeviceRate:
    """One ``blkio_config`` device entry: a weight, or a rate in bytes or operations per second."""

    path: str
    value: int


@dataclass(frozen=True)
class BlkioConfig:
    weight: int | None = None
    weight_device: tuple[DeviceRate, ...] = ()
    device_read_bps: tuple[DeviceRate, ...] = ()
    device_read_iops: tuple[DeviceRate, ...] = ()
    device_write_bps: tuple[DeviceRate, ...] = ()
    device_write_iops: tuple[DeviceRate, ...] = ()


@dataclass(frozen=True)
class DeviceRequest:
    """``deploy.resources.reservations.devices`` entry (GPUs and other devices a driver hands out)."""

    driver: str = ""
    count: int | None = None         # -1: all
    device_ids: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    options: Pairs = ()


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: DependencyCondition = "service_started"
    restart: bool = False   # restart this service after the runtime replaces the dependency
    required: bool = True   # False: a dependency that failed for good does not hold this service back


@dataclass(frozen=True)
class ServiceHook:
    """One ``post_start`` / ``pre_stop`` entry: a command run in the service's container."""
    command: tuple[str, ...]
    user: str | None = None
    privileged: bool = False
    working_dir: str | None = None
    environment: Pairs = ()


@dataclass(frozen=True)
class RestartPolicy:
    mode: RestartMode = "no"
    max_retries: int | None = None  # only for on-failure
    # False when the file has no `restart:` for the service: the runtime then supervises it under
    # its default policy (runtime/exits.py), and says so, instead of compose's silent "no".
    declared: bool = True


# What the loader records for a service without `restart:`; exits.with_default_restart resolves it.
UNDECLARED_RESTART = RestartPolicy("no", declared=False)


@dataclass(frozen=True)
class Healthcheck:
    test: tuple[str, ...]  # ("CMD", ...), ("CMD-SHELL", "...") or ("NONE",)
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class LoggingSpec:
    driver: str = "json-file"
    options: Pairs = ()


@dataclass(frozen=True)
class VolumesFrom:
    service: str
    read_only: bool = False


@dataclass(frozen=True)
class NetworkAttachment:
    """How a service joins one network (the mapping form of a service's ``networks:``)."""

    network: str                      # stack-level name
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None
    priority: int = 0                 # the highest is joined at create time (then by name)


FileObjectKind = Literal["secret", "config"]


@dataclass(frozen=True)
class FileObjectSpec:
    """A top-level ``secrets:`` or ``configs:`` entry, as compose uses it without swarm.

    ``file``: an absolute host path, bind-mounted read-only. Otherwise ``content`` holds the
    bytes (from ``environment:`` or ``content:``), copied into the container at create; it is
    kept out of ``repr`` so no log or error ever shows it.
    """

    name: str
    kind: FileObjectKind
    file: str | None = None
    content: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FileMount:
    """A service's use of a secret or config: where it appears and with which owner and mode."""

    source: str                      # the top-level entry's name
    target: str                      # absolute path in the container
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None          # permission bits; None: 0444 (as compose)


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    image: str | None = None
    build: BuildSpec | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    environment: Pairs = ()           # env_file merged in, explicit entries win
    ports: tuple[PortSpec, ...] = ()
    volumes: tuple[VolumeMount, ...] = ()
    volumes_from: tuple[VolumesFrom, ...] = ()
    depends_on: tuple[Dependency, ...] = ()
    restart: RestartPolicy = UNDECLARED_RESTART
    healthcheck: Healthcheck | None = None  # None: none defined (the image's own may apply)
    labels: Pairs = ()
    networks: tuple[str, ...] = ()    # stack-level network names (unprefixed)
    # Only networks with a setting (aliases, addresses, priority); left out of the config hash
    # while empty, so specs without settings keep the hash they had before it existed.
    network_settings: tuple[NetworkAttachment, ...] = ()
    network_mode: str | None = None   # "bridge", "host", "none" or "service:NAME"
    privileged: bool = False
    devices: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    user: str | None = None
    working_dir: str | None = None
    hostname: str | None = None
    mem_limit: int | None = None      # bytes
    cpus: float | None = None
    logging: LoggingSpec | None = None  # None: the runtime's default (json-file with rotation)
    stop_signal: str | None = None
    stop_grace_period: float = 10.0
    secrets: tuple[FileMount, ...] = ()
    configs: tuple[FileMount, ...] = ()
    # Keys added after the first release. Each default is what the engine does when the key is
    # absent, and the config hash leaves a field out while it has its default, so containers
    # created before these keys existed keep their hash (see runtime.hashing).
    container_name: str | None = None
    expose: tuple[str, ...] = ()          # "3000/tcp", ranges expanded
    links: Pairs = ()                     # (service, alias)
    extra_hosts: tuple[str, ...] = ()     # "host:address"
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_opt: tuple[str, ...] = ()
    sysctls: Pairs = ()
    ulimits: tuple[Ulimit, ...] = ()
    shm_size: int | None = None           # bytes
    init: bool | None = None              # None: the engine's default
    platform: str | None = None           # "os/arch[/variant]" as written
    read_only: bool = False
    security_opt: tuple[str, ...] = ()
    tty: bool = False
    stdin_open: bool = False
    pid: str | None = None
    ipc: str | None = None
    uts: str | None = None
    userns_mode: str | None = None
    cgroup: str | None = None             # cgroup namespace: "host" or "private"
    group_add: tuple[str, ...] = ()
    pids_limit: int | None = None
    cpu_shares: int | None = None
    cpu_quota: int | None = None          # microseconds
    cpu_period: int | None = None         # microseconds
    cpu_rt_runtime: int | None = None     # microseconds
    cpu_rt_period: int | None = None      # microseconds
    cpuset: str | None = None
    cpu_count: int | None = None
    cpu_percent: int | None = None
    mem_reservation: int | None = None    # bytes
    memswap_limit: int | None = None      # bytes, -1: unlimited
    mem_swappiness: int | None = None
    oom_score_adj: int | None = None
    oom_kill_disable: bool = False
    device_cgroup_rules: tuple[str, ...] = ()
    device_requests: tuple[DeviceRequest, ...] = ()
    runtime: str | None = None
    cgroup_parent: str | None = None
    storage_opt: Pairs = ()
    blkio_config: BlkioConfig | None = None
    mac_address: str | None = None
    domainname: str | None = None
    annotations: Pairs = ()
    # Run by the runtime around starts and stops, not baked into the container: left out of the
    # config hash (as docker compose leaves them out of its own), so editing a hook recreates nothing.
    post_start: tuple[ServiceHook, ...] = ()
    pre_stop: tuple[ServiceHook, ...] = ()
    attach: bool = True  # False: the runtime does not follow this service's output (compose `attach: false`)

    def label(self, key: str, default: str | None = None) -> str | None:
        return dict(self.labels).get(key, default)

    @property
    def network_service(self) -> str | None:
        """The service whose network stack this one joins (``network_mode: service:X``)."""
        if self.network_mode and self.network_mode.startswith("service:"):
            return self.network_mode.split(":", 1)[1]
        return None

    @property
    def joined_services(self) -> tuple[str, ...]:
        """Services whose running container this one shares a namespace with (network_mode, ipc, pid
        ``service:X``): each must run before this one is created, and its container id is baked in."""
        modes = (self.network_mode, self.ipc, self.pid)
        return tuple(dict.fromkeys(m.split(":", 1)[1] for m in modes if m and m.startswith("service:")))


@dataclass(frozen=True)
class VolumeSpec:
    name: str                 # as written in the file
    external: bool = False
    external_name: str | None = None
    driver: str | None = None
    labels: Pairs = ()
    driver_opts: Pairs = ()
    custom_name: str | None = None   # `name:` of one the stack creates: its engine-side name


@dataclass(frozen=True)
class IpamPool:
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: Pairs = ()


@dataclass(frozen=True)
class IpamSpec:
    driver: str | None = None
    config: tuple[IpamPool, ...] = ()
    options: Pairs = ()


@dataclass(frozen=True)
class NetworkSpec:
    name: str
    external: bool = False
    external_name: str | None = None
    driver: str | None = None
    labels: Pairs = ()
    driver_opts: Pairs = ()
    ipam: IpamSpec | None = None
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    custom_name: str | None = None   # `name:` of one the stack creates: its engine-side name


@dataclass(frozen=True)
class StackSpec:
    project: str
    services: tuple[ServiceSpec, ...]   # in file order
    volumes: tuple[VolumeSpec, ...] = ()
    networks: tuple[NetworkSpec, ...] = ()
    source: str = ""                    # absolute path of the compose file
    workdir: str = ""                   # directory relative paths were resolved against
    secrets: tuple[FileObjectSpec, ...] = ()
    configs: tuple[FileObjectSpec, ...] = ()

    def file_object(self, kind: FileObjectKind, name: str) -> FileObjectSpec:
        """The top-level secret or config ``name`` (KeyError if the file has none)."""
        for obj in self.secrets if kind == "secret" else self.configs:
            if obj.name == name:
                return obj
        raise KeyError(name)

    def service(self, name: str) -> ServiceSpec:
        for s in self.services:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def service_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.services)

    def image_ref(self, service: str) -> str:
        """The image a service runs: its ``image:``, else the tag its build gets (compose v2 naming)."""
        spec = self.service(service)
        return spec.image or f"{self.project}-{service}"

    def volume_name(self, name: str) -> str:
        """Engine-side name of a stack volume (project-prefixed unless external or named)."""
        for v in self.volumes:
            if v.name == name and v.external:
                return v.external_name or v.name
            if v.name == name and v.custom_name:
                return v.custom_name
        return f"{self.project}_{name}"

    def network_name(self, name: str) -> str:
        """Engine-side name of a stack network (project-prefixed unless external or named)."""
        for n in self.networks:
            if n.name == name and n.external:
                return n.external_name or n.name
            if n.name == name and n.custom_name:
                return n.custom_name
        return f"{self.project}_{name}"
