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


@dataclass(frozen=True)
class BuildSpec:
    context: str                 # absolute path of the build context directory
    dockerfile: str = "Dockerfile"  # relative to the context
    args: Pairs = ()
    target: str | None = None


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


@dataclass(frozen=True)
class Dependency:
    service: str
    condition: DependencyCondition = "service_started"


@dataclass(frozen=True)
class RestartPolicy:
    mode: RestartMode = "no"
    max_retries: int | None = None  # only for on-failure


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
    restart: RestartPolicy = field(default_factory=RestartPolicy)
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

    def label(self, key: str, default: str | None = None) -> str | None:
        return dict(self.labels).get(key, default)

    @property
    def network_service(self) -> str | None:
        """The service whose network stack this one joins (``network_mode: service:X``)."""
        if self.network_mode and self.network_mode.startswith("service:"):
            return self.network_mode.split(":", 1)[1]
        return None


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
