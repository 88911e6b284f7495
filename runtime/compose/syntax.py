"""Parsers for the compact string forms compose allows (ports, volumes, restart...).

Pure functions of their text: each returns model objects or raises :class:`ValueError` whose
message quotes the text and shows an accepted form. The service reader adds file, service,
field and line.
"""

from __future__ import annotations

import os
from typing import Any, Literal, cast

from runtime.compose.model import PortSpec, RestartMode, RestartPolicy, VolumeMount, VolumesFrom

Protocol = Literal["tcp", "udp"]

PORT_FORMS = "'80', '8080:80', '127.0.0.1:8080:80/udp' or '9000-9001:9000-9001'"
RESTART_FORMS = "'no', 'always', 'on-failure', 'on-failure:N' or 'unless-stopped'"
# Mount options that only matter on Docker Desktop (file sharing with a VM): nothing to do here.
_IGNORED_MOUNT_OPTIONS = frozenset({"consistent", "cached", "delegated"})
PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")
EXPOSE_FORMS = "'3000', '3000/udp' or '3000-3005'"
DEVICE_FORMS = "'/dev/ttyUSB0', '/dev/ttyUSB0:/dev/ttyACM0', '/dev/sda:/dev/xvda:rwm' or 'vendor.com/class=name'"


def port_number(value: object, *, what: str = "port") -> int:
    """An integer port in 1-65535 from an int or its text."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a {what} number; expected 1-65535")
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        if not text.isdigit():
            raise ValueError(f"{text!r} is not a {what} number; expected 1-65535")
        number = int(text)
    if not 1 <= number <= 65535:
        raise ValueError(f"{what} {number} is out of range; expected 1-65535")
    return number


def protocol(value: str) -> Protocol:
    proto = value.strip().lower()
    if proto not in ("tcp", "udp"):
        raise ValueError(f"protocol {value!r} is not supported; expected 'tcp' or 'udp'")
    return cast(Protocol, proto)


class TooManyPorts(ValueError):
    """A port range expands to more ports than the caller has room for (checked before expanding)."""

    def __init__(self, count: int):
        self.count = count
        super().__init__(f"this expands to {count} ports")


def _port_range(text: str, what: str) -> range:
    low, sep, high = text.partition("-")
    if not sep:
        number = port_number(text, what=what)
        return range(number, number + 1)
    first, last = port_number(low, what=what), port_number(high, what=what)
    if last < first:
        raise ValueError(f"the {what} range {text!r} runs backwards; write the lower port first")
    return range(first, last + 1)


def parse_port(spec: str | int, room: int | None = None) -> list[PortSpec]:
    """Short port syntax → one PortSpec per port (ranges expand).

    Raises :class:`TooManyPorts` instead of expanding to more than ``room`` ports.
    """
    if isinstance(spec, int) and not isinstance(spec, bool):
        if room is not None and room < 1:
            raise TooManyPorts(1)
        return [PortSpec(target=port_number(spec, what="container port"))]
    text = str(spec).strip()
    body, slash, proto_text = text.rpartition("/")
    if not slash:
        body, proto_text = text, "tcp"
    proto = protocol(proto_text)
    host_ip = ""
    if body.startswith("["):
        close = body.find("]")
        if close < 0 or body[close + 1 : close + 2] != ":":
            raise ValueError(f"invalid port {text!r}: expected '[IPv6]:published:target'")
        host_ip, body = body[1:close], body[close + 2 :]
        parts = body.split(":")
        if len(parts) != 2:
            raise ValueError(f"invalid port {text!r}: expected '[IPv6]:published:target'")
    else:
        parts = body.split(":")
        if len(parts) == 3:
            host_ip, parts = parts[0], parts[1:]
        elif len(parts) > 3:
            raise ValueError(f"invalid port {text!r}: expected {PORT_FORMS} (write IPv6 addresses in brackets)")
    targets = _port_range(parts[-1], "container port")
    if room is not None and len(targets) > room:
        raise TooManyPorts(len(targets))
    if len(parts) == 1 or parts[0] == "":
        return [PortSpec(target=t, protocol=proto, host_ip=host_ip) for t in targets]
    published = _port_range(parts[0], "published port")
    if len(published) != len(targets):
        raise ValueError(
            f"invalid port {text!r}: the published range has {len(published)} port(s) and the container "
            f"range {len(targets)}; they must be the same length"
        )
    pairs = zip(published, targets, strict=True)
    return [PortSpec(target=t, published=p, protocol=proto, host_ip=host_ip) for p, t in pairs]


def _bind_source(source: str, workdir: str, home: str | None) -> str:
    if source == "~" or source.startswith("~/"):
        if not home:
            raise ValueError(f"cannot expand {source!r}: HOME is not set")
        source = home + source[1:]
    return os.path.normpath(os.path.join(workdir, source))


def is_path(source: str) -> bool:
    """Whether a volume source is a host path (bind) rather than a named volume."""
    return source.startswith(("/", ".", "~"))


def parse_volume(spec: str, workdir: str, home: str | None = None) -> VolumeMount:
    """Short volume syntax: ``name:/path[:ro]``, ``./rel:/path``, ``/abs:/path:rw``, ``/path``."""
    text = spec.strip()
    forms = "'name:/path', './dir:/path', '/host:/path:ro' or '/path'"
    parts = text.split(":")
    if not text or len(parts) > 3 or any(not p for p in parts):
        raise ValueError(f"invalid volume {spec!r}: expected {forms}")
    mode = ""
    if len(parts) == 3 or (len(parts) == 2 and not parts[1].startswith("/") and parts[0].startswith("/")):
        mode = parts.pop()
    read_only = False
    options: dict[str, Any] = {}
    for option in mode.split(",") if mode else ():
        if option in ("ro", "rw"):
            read_only = option == "ro"
        elif option in ("z", "Z"):
            options["selinux"] = option
        elif option in PROPAGATIONS:
            options["propagation"] = option
        elif option == "nocopy":
            options["nocopy"] = True
        elif option not in _IGNORED_MOUNT_OPTIONS:
            raise ValueError(f"invalid volume {spec!r}: unknown mode {option!r}; expected 'ro' or 'rw' (and "
                             f"optionally z, Z, nocopy or one of {', '.join(PROPAGATIONS)})")
    target = parts[-1]
    if not target.startswith("/"):
        raise ValueError(f"invalid volume {spec!r}: the container path {target!r} must be absolute")
    source = parts[0] if len(parts) > 1 else None
    bind = source is not None and is_path(source)
    if bind:
        options.pop("nocopy", None)  # compose ignores it on a host path too
    if source is None:
        return VolumeMount(type="volume", target=target, source=None, read_only=read_only, **options)
    if bind:
        return VolumeMount(type="bind", target=target, source=_bind_source(source, workdir, home),
                           read_only=read_only, **options)
    return VolumeMount(type="volume", target=target, source=source, read_only=read_only, **options)


def bind_source(source: str, workdir: str, home: str | None = None) -> str:
    """Absolute host path of a bind source written relative to the compose file's directory."""
    return _bind_source(source, workdir, home)


def parse_restart(value: object) -> RestartPolicy:
    # Unquoted `no` is the boolean false in YAML 1.1: it still means "never restart".
    if value is False:
        return RestartPolicy("no")
    if not isinstance(value, str):
        raise ValueError(f"invalid restart policy {value!r}: expected {RESTART_FORMS}")
    text = value.strip()
    if text in ("no", "always", "unless-stopped", "on-failure"):
        return RestartPolicy(cast(RestartMode, text))
    mode, sep, count = text.partition(":")
    if mode == "on-failure" and sep and count.strip().isdigit() and len(count.strip()) <= 18:
        return RestartPolicy("on-failure", int(count))
    raise ValueError(f"invalid restart policy {value!r}: expected {RESTART_FORMS}")


def parse_volumes_from(value: str) -> VolumesFrom:
    text = value.strip()
    if text.startswith("container:"):
        raise ValueError(
            f"{text!r}: volumes_from a container is not supported, only services of this stack; "
            "use 'service' or 'service:ro'"
        )
    name, sep, mode = text.partition(":")
    if not name or (sep and mode not in ("ro", "rw")):
        raise ValueError(f"invalid volumes_from {value!r}: expected 'service', 'service:ro' or 'service:rw'")
    return VolumesFrom(service=name, read_only=mode == "ro")


def parse_network_mode(value: str) -> str:
    text = value.strip()
    if text in ("bridge", "host", "none"):
        return text
    if text.startswith("service:") and text[len("service:") :]:
        return text
    if text.startswith("container:"):
        raise ValueError(
            f"network_mode {text!r} is not supported: only services of this stack can share a network "
            "stack; use 'service:NAME'"
        )
    raise ValueError(f"invalid network_mode {text!r}: expected 'bridge', 'host', 'none' or 'service:NAME'")


def parse_expose(value: str | int) -> list[str]:
    """``expose`` entry → engine port keys (``"3000/tcp"``), one per port of a range."""
    text = str(value).strip()
    body, slash, proto_text = text.partition("/")
    proto = protocol(proto_text) if slash else "tcp"
    try:
        ports = _port_range(body, "exposed port")
    except ValueError as exc:
        raise ValueError(f"invalid expose {text!r}: {exc}; expected {EXPOSE_FORMS}") from None
    return [f"{p}/{proto}" for p in ports]


def parse_device(value: str) -> str:
    """Short ``devices`` entry → the engine's ``host:container:permissions`` form (CDI names as they are)."""
    text = value.strip()
    if is_cdi_device(text):
        return text
    parts = text.split(":")
    if not text or len(parts) > 3 or any(not p for p in parts):
        raise ValueError(f"invalid device {value!r}: expected {DEVICE_FORMS}")
    if len(parts) == 3 or (len(parts) == 2 and not parts[1].startswith("/")):
        perms = parts.pop()
        if not perms or any(c not in "rwm" for c in perms):
            raise ValueError(f"invalid device {value!r}: permissions {perms!r} must be made of r, w and m")
    else:
        perms = "rwm"
    host = parts[0]
    container = parts[1] if len(parts) > 1 else host
    for path in (host, container):
        if not path.startswith("/"):
            raise ValueError(f"invalid device {value!r}: {path!r} must be an absolute path; expected {DEVICE_FORMS}")
    return f"{host}:{container}:{perms}"


def is_cdi_device(text: str) -> bool:
    """A fully qualified CDI device name (``vendor.com/class=name``), which the engine resolves itself."""
    kind, eq, name = text.partition("=")
    vendor, slash, cls = kind.partition("/")
    return bool(eq and slash and vendor and cls and name and not text.startswith("/"))


def parse_link(value: str) -> tuple[str, str]:
    """``service`` or ``service:alias`` → (service, alias)."""
    text = value.strip()
    service, sep, alias = text.partition(":")
    if not service or (sep and not alias) or ":" in alias:
        raise ValueError(f"invalid link {value!r}: expected 'service' or 'service:alias'")
    return service, alias or service


def parse_extra_host(value: str) -> tuple[str, str]:
    """``host:address`` or ``host=address`` → (host, address); IPv6 addresses may be in brackets."""
    text = value.strip()
    if "=" in text:
        host, _, address = text.partition("=")
    else:
        host, _, address = text.partition(":")
    host, address = host.strip(), address.strip()
    if address.startswith("[") and address.endswith("]"):
        address = address[1:-1]
    if not host or not address:
        raise ValueError(f"invalid extra host {value!r}: expected 'name:address' or 'name=address', such as "
                         "'db.local:10.0.0.5'")
    return host, address


def parse_platform(value: str) -> tuple[str, str, str]:
    """``os/arch[/variant]`` → normalised (os, arch, variant), arch spelled as the engine reports it."""
    text = value.strip().lower()
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"invalid platform {value!r}: expected 'os/arch' or 'os/arch/variant', such as "
                         "'linux/arm64' or 'linux/arm/v7'")
    os_name, arch = parts[0], ARCH_ALIASES.get(parts[1], parts[1])
    variant = parts[2] if len(parts) == 3 else ""
    return os_name, arch, variant


# Other spellings of the architectures the engine reports (Go's GOARCH names).
ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                "armv7l": "arm", "armv6l": "arm", "i386": "386", "i686": "386"}
