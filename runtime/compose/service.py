"""Reading one service definition into a :class:`ServiceSpec`.

Each top-level key of a service has a reader in ``_READERS``. A reader raises
:class:`FieldError` for a wrong value (it becomes an error naming service, field and line) or
records several problems itself when a list has more than one bad item. References to other
parts of the file (services, volumes, networks) are recorded as :class:`Ref` and checked by
:mod:`runtime.compose.graph` once every service has been read.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from runtime.compose import shellwords, syntax
from runtime.compose.coerce import (
    FieldError,
    as_bool,
    as_float,
    as_int,
    as_list,
    as_map,
    as_str,
    describe,
    name_key,
    pairs,
    scalar_text,
    str_list,
    str_or_list,
)
from runtime.compose.env import parse_env
from runtime.compose.fileobjects import parse_mount
from runtime.compose.model import (
    INLINE_DOCKERFILE,
    BlkioConfig,
    BuildSpec,
    Dependency,
    DependencyCondition,
    DeviceRate,
    DeviceRequest,
    FileMount,
    FileObjectKind,
    Healthcheck,
    LoggingSpec,
    NetworkAttachment,
    PortSpec,
    ServiceHook,
    ServiceSpec,
    Ulimit,
    VolumeMount,
    VolumesFrom,
)
from runtime.compose.report import Ref, RefKind, Report
from runtime.compose.textfiles import UnreadableFile, read_text_file
from runtime.compose.units import parse_duration, parse_size
from runtime.compose.yamlnodes import LineDict, LineList

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

# Keys docker compose knows that the runtime does not act on: a warning says so by name.
_UNSUPPORTED = {
    "external_links": "only services of this stack are managed",
    "provider": "services run by an external provider need docker compose and its plugins",
    "models": "AI models need Docker Model Runner, which armstack does not drive",
    "credential_spec": "it applies to Windows containers only",
    "use_api_socket": "armstack does not hand the engine's API socket to containers",
    "pre_start": "this hook is run by docker compose only; post_start and pre_stop are run by armstack",
    "scale": "armstack runs one container per service",
    "develop": "watch mode is a development feature of docker compose",
    "isolation": "it applies to Windows containers only",
}
_IGNORED = frozenset({
    "pull_policy", "volume_driver", "log_driver", "log_opt", "net",
})
_BUILD_IGNORED = frozenset({
    "cache_from", "cache_to", "platforms", "tags", "ssh", "secrets", "isolation", "privileged", "entitlements",
    "ulimits",
})
_BUILD_KEYS = ("context", "dockerfile", "target", "args", "dockerfile_inline", "labels", "shm_size", "extra_hosts",
               "network", "no_cache", "pull")


@dataclass
class ServiceReader:
    report: Report
    name: str
    node: LineDict
    workdir: str
    env: Mapping[str, str]  # what variables and bare `KEY` entries resolve against
    kwargs: dict[str, Any] = field(default_factory=dict)
    environment: list[tuple[str, str]] = field(default_factory=list)
    env_files: list[tuple[str, str]] = field(default_factory=list)
    deploy_resources: dict[str, Any] = field(default_factory=dict)  # deploy.resources, by ServiceSpec field
    links: list[tuple[str, int | None]] = field(default_factory=list)  # (service, line): implied depends_on
    label_files: list[tuple[str, str]] = field(default_factory=list)
    gpus: list[DeviceRequest] = field(default_factory=list)
    hints_left: int = 20  # spelling hints for unknown keys

    def line(self, key: str) -> int | None:
        return self.node.line_of(key)

    def error(self, message: str, field: str, line: int | None = None) -> None:
        self.report.error(message, service=self.name, field=field, line=line or self.line(field.split(".")[0]))

    def warn(self, message: str, field: str, line: int | None = None) -> None:
        self.report.warn(message, service=self.name, field=field, line=line or self.line(field.split(".")[0]))

    def ref(self, kind: RefKind, target: str, field: str, line: int | None) -> None:
        self.report.refs.append(Ref(self.name, kind, target, field, line or self.line(field.split(".")[0])))

    def items(self, value: Any, field: str, what: str, parse: Callable[[Any, int | None], None]) -> None:
        """Feed each item of a list to ``parse``; a bad item is reported and the others still read."""
        items = as_list(value, what)
        for index, item in enumerate(items):
            line = items.line_of(index)
            try:
                parse(item, line)
            except (FieldError, ValueError) as exc:
                self.error(str(exc), field, getattr(exc, "line", None) or line)


def read_service(report: Report, name: str, node: Any, workdir: str, env: Mapping[str, str]) -> ServiceSpec | None:
    """The service ``name``, or None when it has errors (they are in ``report``)."""
    if not isinstance(node, dict):
        hint = " (it is empty)" if node is None else f", found {describe(node)}"
        report.error(f"expected a mapping of service settings{hint}", service=name)
        return None
    if not isinstance(node, LineDict):
        node = LineDict(node)
    reader = ServiceReader(report, name, node, workdir, env)
    errors_before = len(report.errors)
    for key, value in node.items():
        key_text = str(key)
        if key_text.startswith("x-"):
            continue
        handler = _READERS.get(key_text)
        if handler is None:
            _unknown_key(reader, key_text)
            continue
        try:
            handler(reader, value)
        except FieldError as exc:
            reader.error(str(exc), exc.field or key_text, exc.line)
        except ValueError as exc:
            reader.error(str(exc), key_text)
        except Exception as exc:  # noqa: BLE001 - a bad file must never become a traceback
            reader.error(f"could not read this value ({type(exc).__name__}: {exc})", key_text)
    try:
        spec = _finish(reader)
    except Exception as exc:  # noqa: BLE001 - same reason
        reader.error(f"could not read this service ({type(exc).__name__}: {exc})", "")
        return None
    return spec if len(report.errors) == errors_before else None


def _extension(key: object) -> bool:
    """An ``x-`` key: the compose specification allows these in every mapping, for tools to use."""
    return isinstance(key, str) and key.startswith("x-")


def _unknown_key(r: ServiceReader, key: str) -> None:
    if key in _UNSUPPORTED:
        r.warn(f"'{key}' is not supported and is ignored: {_UNSUPPORTED[key]}", key)
    elif key in _IGNORED:
        r.warn(f"'{key}' is not supported by armstack and is ignored", key)
    else:
        # A spelling hint costs a comparison with every known key: a few hints help, thousands
        # of them (a generated or corrupted file) would take seconds.
        close = difflib.get_close_matches(key, list(_READERS), n=1) if r.hints_left > 0 and len(key) <= 64 else []
        r.hints_left -= 1
        hint = f"; did you mean '{close[0]}'?" if close else ""
        r.warn(f"unknown key '{key}' is ignored{hint}", key)


def _finish(r: ServiceReader) -> ServiceSpec:
    kw = r.kwargs
    if "image" not in kw and "build" not in kw:
        r.error("has neither 'image' nor 'build'; expected at least one of them", "image", r.node.line)
    # Two spellings of one limit: docker compose refuses a file where they disagree.
    for key, limit in (("mem_limit", "memory"), ("cpus", "cpus"), ("pids_limit", "pids")):
        if key in kw and key in r.deploy_resources and kw[key] != r.deploy_resources[key]:
            r.error(f"'{key}' and 'deploy.resources.limits.{limit}' are set to different values; they are the "
                    "same limit, keep one of them", key)
        elif key in r.deploy_resources:
            kw[key] = r.deploy_resources[key]
    # As docker compose: a reservation under deploy.resources wins over mem_reservation.
    for key in ("mem_reservation", "device_requests"):
        if key in r.deploy_resources:
            kw[key] = r.deploy_resources[key]
    if r.label_files:
        labels = dict(r.label_files)
        labels.update(kw.get("labels", ()))  # labels written in the file win, as in docker compose
        kw["labels"] = tuple(sorted(labels.items()))
    if r.gpus:
        kw["device_requests"] = (*kw.get("device_requests", ()), *r.gpus)
    if r.links:
        # A link implies a start dependency, as in docker compose.
        declared = {d.service for d in kw.get("depends_on", ())}
        implied = tuple(Dependency(name) for name in dict.fromkeys(n for n, _ in r.links) if name not in declared)
        kw["depends_on"] = (*kw.get("depends_on", ()), *implied)
    if "network_mode" in kw and "networks" in kw:
        r.error("'networks' and 'network_mode' cannot be used together; keep one of them", "network_mode")
    if "network_mode" not in kw and "networks" not in kw:
        kw["networks"] = ("default",)
        r.ref("network", "default", "networks", r.node.line)
    merged = dict(r.env_files)
    merged.update(r.environment)
    kw["environment"] = tuple(sorted(merged.items()))
    return ServiceSpec(name=r.name, **kw)


# ---- simple fields -------------------------------------------------------------------------


def _string_field(key: str, *, empty_ok: bool = False) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        text = as_str(value)
        if not text and not empty_ok:
            raise FieldError("expected a non-empty string")
        r.kwargs[key] = text

    return read


def _image(r: ServiceReader, value: Any) -> None:
    text = as_str(value, "an image reference such as 'nginx:1.25'")
    if not text.strip():
        raise FieldError("expected an image reference such as 'nginx:1.25', found an empty string")
    r.kwargs["image"] = text.strip()


def _command(key: str) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is not None:
            r.kwargs[key] = _words(value)

    return read


def _words(value: Any) -> tuple[str, ...]:
    """A command as a string (split as a shell would) or a list of strings."""
    if isinstance(value, list):
        # `[echo, yes]` reads `yes` as a boolean; the word is what the command wants.
        items = as_list(value, "strings")
        return tuple(_item_text(items, i) for i in range(len(items)))
    text = as_str(value, "a string or a list of strings")
    try:
        return tuple(shellwords.split(text))   # linear, unlike shlex on a megabyte string
    except ValueError as exc:
        raise FieldError(f"cannot split {describe(text)} into words ({exc}); check the quotes or use a list"
                         ) from exc


def _item_text(items: LineList, index: int) -> str:
    try:
        return scalar_text(items[index], "each item to be a string")
    except FieldError as exc:
        raise FieldError(str(exc), items.line_of(index)) from exc


def _bool_field(key: str) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        r.kwargs[key] = as_bool(value)

    return read


def _str_list_field(key: str) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is not None:
            r.kwargs[key] = str_list(value, "strings")

    return read


def _tmpfs(r: ServiceReader, value: Any) -> None:
    if value is not None:
        paths = str_or_list(value, "container paths")
        for path in paths:
            if not path.startswith("/"):
                raise FieldError(f"expected an absolute container path, found {path!r}")
        r.kwargs["tmpfs"] = paths


def _mem_limit(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.kwargs["mem_limit"] = parse_size(value)


def _cpus(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.kwargs["cpus"] = _cpu_count(value)


# The engine takes CPUs as int64 billionths of a CPU.
_MAX_CPUS = (2**63 - 1) // 1_000_000_000


def _cpu_count(value: Any) -> float:
    cpus = as_float(value, "a number of CPUs such as 0.5 or 2")
    if not 0 < cpus <= _MAX_CPUS:
        raise FieldError(f"expected a positive number of CPUs such as 0.5 or 2 (at most {_MAX_CPUS}), "
                         f"found {describe(value)}")
    return cpus


def _stop_grace_period(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.kwargs["stop_grace_period"] = parse_duration(value)


def _restart(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.kwargs["restart"] = syntax.parse_restart(value)


_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")


def _container_name(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    name = as_str(value, "a container name")
    if not _CONTAINER_NAME.fullmatch(name):
        raise FieldError(f"invalid container name {name!r}: expected at least two letters, digits, '_', '.' or "
                         "'-', starting with a letter or digit")
    r.kwargs["container_name"] = name
    r.ref("container_name", name, "container_name", None)


def _labels(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    _warn_booleans(r, value, "labels")
    found = pairs(value, "label names to values", allow_bare=True)
    r.kwargs["labels"] = tuple(sorted({k: v or "" for k, v, _ in found}.items()))


# ---- environment ---------------------------------------------------------------------------


def _warn_booleans(r: ServiceReader, value: Any, field: str) -> None:
    # `DEBUG: yes` arrives as True and would be passed on as "true": say so, the fix is to quote it.
    if isinstance(value, LineDict):
        for key, raw in value.items():
            if isinstance(raw, bool):
                r.warn(f"the value of {key} is the YAML boolean {str(raw).lower()} and is passed as "
                       f"'{str(raw).lower()}'; quote it to keep it as written", f"{field}.{key}",
                       value.line_of(key))


def _environment(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    _warn_booleans(r, value, "environment")
    for key, text, _line in pairs(value, "variable names to values", allow_bare=True):
        if text is None:
            # `- KEY` / `KEY:` passes the variable through; unset means "leave it out".
            text = r.env.get(key)
            if text is None:
                continue
        r.environment.append((key, text))


def _env_file(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.env_files.extend(_key_value_files(r, value, "env_file", "env file"))


def _label_file(r: ServiceReader, value: Any) -> None:
    if value is not None:
        r.label_files.extend(_key_value_files(r, value, "label_file", "label file"))


def _key_value_files(r: ServiceReader, value: Any, key: str, what: str) -> list[tuple[str, str]]:
    """The ``KEY=VALUE`` lines of the files ``value`` names (env_file / label_file syntax), in order."""
    found: list[tuple[str, str]] = []
    entries: list[tuple[str, bool, int | None]] = []
    if isinstance(value, list):
        items = as_list(value, "file paths")
        for index, item in enumerate(items):
            line = items.line_of(index)
            if isinstance(item, dict):
                entry = as_map(item, "path/required")
                if "path" not in entry:
                    raise FieldError("expected a 'path' in each env_file mapping", line)
                entries.append((as_str(entry["path"]), as_bool(entry.get("required", True)), line))
            else:
                entries.append((as_str(item, "each item to be a file path"), True, line))
    else:
        entries.append((as_str(value, "a file path or a list of file paths"), True, None))
    for rel, required, line in entries:
        path = os.path.normpath(os.path.join(r.workdir, rel))
        try:
            text = read_text_file(path)
        except FileNotFoundError:
            if required:
                r.error(f"the {what} {path} does not exist", key, line)
            continue
        except UnreadableFile as exc:
            r.error(f"the {what} {path} cannot be used: {exc}", key, line)
            continue
        parsed = parse_env(text, r.env.get, file_wins=True)
        for bad_line, message in parsed.problems:
            r.report.error(message, service=r.name, field=key, line=bad_line, file=path)
        for bad_line, name in parsed.undefined:
            r.report.warn(f"the variable {name} is not set; using an empty string", service=r.name,
                          field=key, line=bad_line, file=path)
        found.extend(parsed.values.items())
    return found


# ---- build ---------------------------------------------------------------------------------


def _build(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    context = value.get("context") if isinstance(value, dict) else value
    if isinstance(context, str) and _is_remote(context) and r.node.get("image") is not None:
        # Nothing to build from on the device; the image the file names can still run.
        r.warn(f"the build context {context!r} is remote and is ignored: the device builds from local "
               "directories only, so the service's image is pulled instead", "build")
        return
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        r.kwargs["build"] = BuildSpec(context=_context(r, as_str(value)))
        return
    spec = as_map(value, "build settings (context, dockerfile, args, target), or a context path")
    for key in spec:
        name = str(key)
        line = spec.line_of(key)
        if name in _BUILD_KEYS or name.startswith("x-"):
            continue
        if name == "additional_contexts":
            r.warn("'additional_contexts' is not supported by the engine's classic builder and is ignored; copy "
                   "what the build needs into the context", "build.additional_contexts", line)
        elif name in _BUILD_IGNORED:
            r.warn(f"'{name}' is not supported by armstack and is ignored", f"build.{name}", line)
        else:
            r.warn(f"unknown key '{name}' is ignored", f"build.{name}", line)
    kw: dict[str, Any] = {}
    for key, read in _BUILD_READERS.items():
        if spec.get(key) is None:
            continue
        try:
            kw[key] = read(r, spec[key])
        except (FieldError, ValueError) as exc:
            r.error(str(exc), f"build.{key}", getattr(exc, "line", None) or spec.line_of(key))
    if "dockerfile" in kw and "dockerfile_inline" in kw:
        r.error("'dockerfile' and 'dockerfile_inline' cannot be used together; keep one of them",
                "build.dockerfile_inline", spec.line_of("dockerfile_inline"))
    elif "dockerfile_inline" in kw:
        kw["dockerfile"] = INLINE_DOCKERFILE
    try:
        context = _context(r, as_str(spec.get("context", "."), "a directory path"))
    except FieldError as exc:
        raise FieldError(str(exc), exc.line or spec.line_of("context")) from exc
    r.kwargs["build"] = BuildSpec(context=context, **kw)


def _build_args(r: ServiceReader, value: Any) -> tuple[tuple[str, str], ...]:
    args: list[tuple[str, str]] = []
    for key, text, _line in pairs(value, "build argument names to values", allow_bare=True):
        text = r.env.get(key) if text is None else text
        if text is not None:
            args.append((key, text))
    return tuple(sorted(dict(args).items()))


def _build_labels(r: ServiceReader, value: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({k: v or "" for k, v, _line in pairs(value, "label names to values",
                                                             allow_bare=True)}.items()))


def _build_extra_hosts(r: ServiceReader, value: Any) -> tuple[tuple[str, str], ...]:
    """``host=ip`` / ``host:ip`` items or a ``host: ip`` mapping, as compose accepts them."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for host, address in value.items():
            found.append((as_str(host), scalar_text(address, "an IP address")))
    else:
        items = as_list(value, "'host=address' entries")
        for index in range(len(items)):
            text = _item_text(items, index)
            sep = "=" if "=" in text else ":"
            host, found_sep, address = text.partition(sep)
            if not found_sep or not host or not address:
                raise FieldError(f"expected 'host=address', found {text!r}", items.line_of(index))
            found.append((host, address))
    return tuple(found)


def _no_default_str(r: ServiceReader, value: Any) -> str:
    text = as_str(value)
    if not text:
        raise FieldError("expected a non-empty string")
    return text


def _inline_dockerfile(r: ServiceReader, value: Any) -> str:
    text = as_str(value, "the text of a Dockerfile")
    if not text.strip():
        raise FieldError("expected the text of a Dockerfile, found an empty string")
    return text


_BUILD_READERS: dict[str, Callable[[ServiceReader, Any], Any]] = {
    "dockerfile": lambda r, v: as_str(v, "a file path") or "Dockerfile",
    "dockerfile_inline": _inline_dockerfile,
    "target": lambda r, v: as_str(v),
    "args": _build_args,
    "labels": _build_labels,
    "shm_size": lambda r, v: parse_size(v),
    "extra_hosts": _build_extra_hosts,
    "network": _no_default_str,
    "no_cache": lambda r, v: as_bool(v),
    "pull": lambda r, v: as_bool(v),
}


def _is_remote(text: str) -> bool:
    return "://" in text or text.startswith(("git@", "github.com/"))


def _context(r: ServiceReader, text: str) -> str:
    if _is_remote(text):
        raise FieldError(f"the build context {text!r} is remote; only local directories are supported, or "
                         "name an image to pull with 'image:'", field="build")
    path = syntax.bind_source(text, r.workdir, r.env.get("HOME"))
    if not os.path.isdir(path):
        r.warn(f"the build context {path} does not exist (yet); building this service will fail", "build")
    return path


# ---- ports, volumes ------------------------------------------------------------------------


# Ranges expand to one binding per port: a few bytes ('1-65535') can ask for 65535 of them.
# One service may map every port number once; a file, twice that.
MAX_PORTS_PER_SERVICE = 65535
MAX_PORTS_PER_FILE = 2 * 65535


def _ports(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[PortSpec] = []
    over = False   # the limit was hit: said once, the items after it are not read

    def parse(item: Any, line: int | None) -> None:
        nonlocal over
        if over:
            return
        per_service = MAX_PORTS_PER_SERVICE - len(found)
        room = min(per_service, MAX_PORTS_PER_FILE - r.report.ports)
        try:
            if isinstance(item, dict):
                ports = [_long_port(as_map(item, "port settings"), line)]
                if room < 1:
                    raise syntax.TooManyPorts(1)
            elif isinstance(item, (str, int)) and not isinstance(item, bool):
                ports = syntax.parse_port(item, room)
            else:
                raise FieldError(f"expected a port such as {syntax.PORT_FORMS}, found {describe(item)}", line)
        except syntax.TooManyPorts as exc:
            over = True
            which, limit = ("service", MAX_PORTS_PER_SERVICE) if exc.count > per_service else \
                ("file", MAX_PORTS_PER_FILE)
            raise FieldError(f"the ports of this {which} expand to more than {limit} ports (each port of a "
                             "range counts); map fewer or smaller ranges", line) from exc
        r.report.ports += len(ports)
        found.extend(ports)

    r.items(value, "ports", "ports such as '8080:80'", parse)
    r.kwargs["ports"] = tuple(found)


def _long_port(spec: LineDict, line: int | None) -> PortSpec:
    if "target" not in spec:
        raise FieldError("expected a 'target' (the container port) in the long port syntax", line)
    published = spec.get("published")
    for key in spec:
        if key not in ("target", "published", "protocol", "host_ip", "mode", "name", "app_protocol") \
                and not _extension(key):
            raise FieldError(f"unknown key {key!r} in the long port syntax; expected target, published, "
                             "protocol, host_ip", spec.line_of(key))
    return PortSpec(
        target=syntax.port_number(spec["target"], what="container port"),
        published=None if published in (None, "") else syntax.port_number(published, what="published port"),
        protocol=syntax.protocol(as_str(spec.get("protocol") or "tcp")),
        host_ip=as_str(spec.get("host_ip") or ""),
    )


def _volumes(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[VolumeMount] = []

    def parse(item: Any, line: int | None) -> None:
        if isinstance(item, dict):
            mount = _long_volume(r, as_map(item, "mount settings"), line)
        elif isinstance(item, str):
            mount = syntax.parse_volume(item, r.workdir, r.env.get("HOME"))
        else:
            raise FieldError(f"expected a volume such as 'data:/data' or './dir:/dir:ro', found {describe(item)}",
                             line)
        if mount.type == "volume" and mount.source:
            r.ref("volume", mount.source, "volumes", line)
        found.append(mount)

    r.items(value, "volumes", "volumes such as 'data:/data'", parse)
    r.kwargs["volumes"] = tuple(found)


def _long_volume(r: ServiceReader, spec: LineDict, line: int | None) -> VolumeMount:
    kind = as_str(spec.get("type", "volume"))
    if kind not in ("volume", "bind", "tmpfs"):
        raise FieldError(f"volume type {kind!r} is not supported; expected 'volume', 'bind' or 'tmpfs'", line)
    if "target" not in spec:
        raise FieldError("expected a 'target' (the container path) in the long volume syntax", line)
    target = as_str(spec["target"])
    if not target.startswith("/"):
        raise FieldError(f"the container path {target!r} must be absolute", line)
    source = None if spec.get("source") in (None, "") else as_str(spec["source"])
    options: dict[str, Any] = {}
    for key in spec:
        if _extension(key):
            continue
        if key in ("bind", "volume", "tmpfs"):
            if key != kind:
                # docker compose warns and ignores them too.
                r.warn(f"'{key}' options do not apply to a mount of type '{kind}' and are ignored", "volumes",
                       spec.line_of(key))
            elif spec[key] is not None:
                options.update(_mount_options(r, kind, as_map(spec[key], f"{kind} options"), spec.line_of(key)))
        elif key == "consistency":
            continue  # only meaningful on Docker Desktop
        elif key not in ("type", "source", "target", "read_only"):
            r.warn(f"unknown key {key!r} in the long volume syntax is ignored", "volumes", spec.line_of(key))
    if kind == "bind":
        if source is None:
            raise FieldError("a bind mount needs a 'source' (the host path)", line)
        source = syntax.bind_source(source, r.workdir, r.env.get("HOME"))
    elif kind == "tmpfs":
        source = None
    return VolumeMount(type=cast(Any, kind), target=target, source=source,
                       read_only=as_bool(spec.get("read_only", False)), **options)


_MOUNT_OPTIONS = {
    "bind": ("propagation", "create_host_path", "selinux"),
    "volume": ("nocopy", "subpath"),
    "tmpfs": ("size", "mode"),
}


def _mount_options(r: ServiceReader, kind: str, spec: LineDict, line: int | None) -> dict[str, Any]:
    """``bind:``, ``volume:`` or ``tmpfs:`` of a long-syntax mount → VolumeMount keyword arguments."""
    out: dict[str, Any] = {}
    for key, raw in spec.items():
        where = spec.line_of(key) or line
        if key not in _MOUNT_OPTIONS[kind]:
            r.warn(f"'{kind}.{key}' is not supported and is ignored; expected one of "
                   f"{', '.join(_MOUNT_OPTIONS[kind])}", "volumes", where)
            continue
        if raw is None:
            continue
        try:
            if key == "propagation":
                value = as_str(raw)
                if value not in syntax.PROPAGATIONS:
                    raise FieldError(f"unknown propagation {value!r}; expected one of {', '.join(syntax.PROPAGATIONS)}")
                out["propagation"] = value
            elif key == "selinux":
                value = as_str(raw)
                if value not in ("z", "Z"):
                    raise FieldError(f"expected 'z' (shared) or 'Z' (private) for bind.selinux, found {value!r}")
                out["selinux"] = value
            elif key == "create_host_path":
                out["create_host_path"] = as_bool(raw)
            elif key == "nocopy":
                out["nocopy"] = as_bool(raw)
            elif key == "subpath":
                value = as_str(raw, "a path inside the volume")
                if value.startswith("/") or ".." in value.split("/"):
                    raise FieldError(f"expected a relative path inside the volume for volume.subpath, found {value!r}")
                out["subpath"] = value
            elif key == "size":
                out["tmpfs_size"] = parse_size(raw)
            elif key == "mode":
                out["tmpfs_mode"] = _file_mode(raw)
        except ValueError as exc:
            raise FieldError(str(exc), where) from exc
    return out


def _file_mode(raw: Any) -> int:
    """Permission bits: an integer as YAML reads it (``0o1777``/``1777`` octal literal) or octal text."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        mode = raw
    else:
        text = as_str(raw, "permission bits such as 0755")
        try:
            mode = int(text, 8)
        except ValueError:
            raise FieldError(f"expected permission bits in octal such as 0755, found {text!r}") from None
    if not 0 <= mode <= 0o7777:
        raise FieldError(f"expected permission bits between 0 and 07777, found {oct(mode)}")
    return mode


def _file_mounts(kind: FileObjectKind) -> Callable[[ServiceReader, Any], None]:
    section = f"{kind}s"

    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        found: list[FileMount] = []

        def parse(item: Any, line: int | None) -> None:
            mount = parse_mount(kind, item)
            r.ref(kind, mount.source, section, line)
            found.append(mount)

        r.items(value, section, f"{kind} names or mappings with source and target", parse)
        targets = [m.target for m in found]
        for dup in sorted({t for t in targets if targets.count(t) > 1}):
            r.error(f"two {section} are mounted at {dup}; give each its own target", section)
        r.kwargs[section] = tuple(found)

    return read


def _volumes_from(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[VolumesFrom] = []

    def parse(item: Any, line: int | None) -> None:
        entry = syntax.parse_volumes_from(as_str(item, "a service name such as 'app' or 'app:ro'"))
        r.ref("volumes_from", entry.service, "volumes_from", line)
        found.append(entry)

    r.items(value, "volumes_from", "service names such as 'app' or 'app:ro'", parse)
    r.kwargs["volumes_from"] = tuple(found)


# ---- lifecycle hooks ------------------------------------------------------------------------

_HOOK_KEYS = ("command", "user", "privileged", "working_dir", "environment")


def _hooks(key: str) -> Callable[[ServiceReader, Any], None]:
    """post_start / pre_stop: a list of commands the runtime runs in the container (docker exec)."""

    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        found: list[ServiceHook] = []

        def parse(item: Any, line: int | None) -> None:
            spec = as_map(item, "a hook: a mapping with 'command' and optionally user, privileged, working_dir, "
                                "environment")
            for extra in spec:
                if extra not in _HOOK_KEYS:
                    r.warn(f"unknown key {extra!r} of a hook is ignored; a hook takes {', '.join(_HOOK_KEYS)}",
                           key, spec.line_of(extra) or line)
            if spec.get("command") in (None, "", []):
                raise FieldError("a hook needs a 'command' (a string or a list of strings)", line)
            try:
                command = _words(spec["command"])
            except FieldError as exc:
                raise FieldError(str(exc), exc.line or spec.line_of("command") or line) from exc
            env = spec.get("environment")
            found.append(ServiceHook(
                command=command,
                user=None if spec.get("user") is None else as_str(spec["user"]),
                privileged=False if spec.get("privileged") is None else as_bool(spec["privileged"]),
                working_dir=None if spec.get("working_dir") is None else as_str(spec["working_dir"]),
                environment=() if env is None else _hook_environment(r, env),
            ))

        r.items(value, key, "hooks (mappings with a 'command')", parse)
        r.kwargs[key] = tuple(found)

    return read


def _hook_environment(r: ServiceReader, value: Any) -> tuple[tuple[str, str], ...]:
    found: list[tuple[str, str]] = []
    for key, text, _line in pairs(value, "variable names to values", allow_bare=True):
        text = r.env.get(key) if text is None else text  # a bare `KEY` passes the variable through, if set
        if text is not None:
            found.append((key, text))
    return tuple(found)


# ---- dependencies, networks ----------------------------------------------------------------


def _depends_on(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[Dependency] = []
    if isinstance(value, dict):
        for key, raw in value.items():
            line = value.line_of(key) if isinstance(value, LineDict) else None
            name = _name_key(key, "service", line)
            condition = "service_started"
            flags = {"restart": False, "required": True}
            if raw is not None:
                settings = as_map(raw, "dependency settings (condition, restart, required)")
                condition = as_str(settings.get("condition", "service_started"))
                for extra in settings:
                    if extra in flags:
                        try:
                            flags[extra] = as_bool(settings[extra])
                        except FieldError as exc:
                            r.error(f"{extra}: {exc}", f"depends_on.{name}.{extra}", settings.line_of(extra) or line)
                    elif extra != "condition" and not _extension(extra):
                        r.warn(f"unknown key {extra!r} is ignored", f"depends_on.{name}", settings.line_of(extra))
            if condition not in CONDITIONS:
                r.error(f"unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}",
                        f"depends_on.{name}", line)
                continue
            r.ref("depends_on", name, "depends_on", line)
            found.append(Dependency(name, cast(DependencyCondition, condition), **flags))
    else:
        items = as_list(value, "service names, or a mapping of service names to conditions")
        for index, item in enumerate(items):
            line = items.line_of(index)
            name = as_str(item, "each item to be a service name")
            r.ref("depends_on", name, "depends_on", line)
            found.append(Dependency(name))
    r.kwargs["depends_on"] = tuple(found)


def _networks(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    names: list[str] = []
    attachments: list[NetworkAttachment] = []
    if isinstance(value, dict):
        for key, raw in value.items():
            line = value.line_of(key) if isinstance(value, LineDict) else None
            name = _name_key(key, "network", line)
            if raw is not None:
                attachment = _attachment(r, name, as_map(raw, "network settings"))
                if attachment != NetworkAttachment(name):
                    attachments.append(attachment)
            names.append(name)
            r.ref("network", name, "networks", line)
    else:
        items = as_list(value, "network names, or a mapping of network names to settings")
        for index, item in enumerate(items):
            name = as_str(item, "each item to be a network name")
            names.append(name)
            r.ref("network", name, "networks", items.line_of(index))
    r.kwargs["networks"] = tuple(dict.fromkeys(names))
    if attachments:
        r.kwargs["network_settings"] = tuple(attachments)


_ATTACHMENT_KEYS = ("aliases", "ipv4_address", "ipv6_address", "priority")


def _attachment(r: ServiceReader, name: str, settings: LineDict) -> NetworkAttachment:
    """One entry of the mapping form of ``networks:`` (aliases, ipv4/ipv6 address, priority)."""
    for extra in settings:
        if extra not in _ATTACHMENT_KEYS and not _extension(extra):
            r.warn(f"'{extra}' is not supported and ignored", f"networks.{name}", settings.line_of(extra))
    aliases = () if settings.get("aliases") is None else str_list(settings["aliases"], "a list of aliases")
    return NetworkAttachment(
        network=name,
        aliases=tuple(dict.fromkeys(aliases)),
        ipv4_address=None if settings.get("ipv4_address") is None else as_str(settings["ipv4_address"]),
        ipv6_address=None if settings.get("ipv6_address") is None else as_str(settings["ipv6_address"]),
        priority=0 if settings.get("priority") is None else as_int(settings["priority"], "an integer priority"),
    )


def _name_key(key: Any, what: str, line: int | None) -> str:
    try:
        return name_key(key, what)
    except FieldError as exc:
        raise FieldError(str(exc), line) from exc


def _network_mode(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    mode = syntax.parse_network_mode(as_str(value, "'bridge', 'host', 'none' or 'service:NAME'"))
    if mode.startswith("service:"):
        r.ref("network_mode", mode.split(":", 1)[1], "network_mode", None)
    r.kwargs["network_mode"] = mode


# ---- engine settings added after the first release ------------------------------------------


def _int_field(
    key: str, what: str, low: int | None = None, high: int | None = None
) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        number = as_int(value, what)
        if (low is not None and number < low) or (high is not None and number > high):
            bounds = f"{low} to {high}" if high is not None else f"{low} or more"
            raise FieldError(f"expected {what} from {bounds}, found {number}")
        r.kwargs[key] = number

    return read


def _size_field(key: str, *, unlimited: bool = False) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        if unlimited and str(value).strip() == "-1":
            r.kwargs[key] = -1  # memswap_limit: -1 means unlimited swap
            return
        r.kwargs[key] = parse_size(value)

    return read


def _micros_field(key: str) -> Callable[[ServiceReader, Any], None]:
    # cpu_rt_runtime/cpu_rt_period: microseconds, or a duration such as '950ms'.
    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        text = str(value).strip()
        if isinstance(value, bool):
            raise FieldError(f"expected microseconds or a duration such as '950ms', found {describe(value)}")
        if text.isdigit():
            r.kwargs[key] = int(text)   # a bare number is microseconds here, not seconds
        else:
            r.kwargs[key] = int(round(parse_duration(value) * 1_000_000))

    return read


def _str_or_list_field(key: str, what: str) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is not None:
            r.kwargs[key] = str_or_list(value, what)

    return read


def _pairs_field(key: str, what: str, *, allow_bare: bool = False) -> Callable[[ServiceReader, Any], None]:
    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        found = pairs(value, what, allow_bare=allow_bare)
        r.kwargs[key] = tuple(sorted({k: v or "" for k, v, _ in found}.items()))

    return read


def _namespace_field(key: str, forms: tuple[str, ...]) -> Callable[[ServiceReader, Any], None]:
    """pid / ipc / uts / userns_mode / cgroup: a mode the engine takes as written.

    ``pid`` and ``ipc`` may also name a service of this stack (``service:NAME``), kept as written:
    the container is created in that service's container's namespace, as docker compose does.
    """

    def read(r: ServiceReader, value: Any) -> None:
        if value is None:
            return
        mode = as_str(value).strip()
        if key in ("pid", "ipc") and mode.startswith("service:"):
            target = mode.split(":", 1)[1].strip()
            if not target:
                raise FieldError(f"expected 'service:NAME' with a service name, found {mode!r}")
            r.ref("namespace", target, key, None)
            r.kwargs[key] = "service:" + target
            return
        if mode.startswith(("service:", "container:")):
            also = " and service:NAME" if key in ("pid", "ipc") else ""
            r.warn(f"'{key}: {mode}' is not supported and is ignored: only services of this stack are managed, "
                   f"so only {', '.join(forms)}{also} are", key)
            return
        if key == "cgroup" and mode not in forms:
            raise FieldError(f"expected 'host' or 'private', found {mode!r}")
        if mode:
            r.kwargs[key] = mode

    return read


def _windows_only(read: Callable[[ServiceReader, Any], None], key: str) -> Callable[[ServiceReader, Any], None]:
    """Passed on as docker compose does, with a warning: only Windows engines act on the key."""

    def wrapped(r: ServiceReader, value: Any) -> None:
        read(r, value)
        if r.kwargs.get(key):
            r.warn(f"'{key}' is passed to the engine, but only Windows engines act on it; a Linux engine "
                   "ignores it. Use 'cpus' to limit CPU use", key)

    return wrapped


def _expose(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[str] = []

    def parse(item: Any, line: int | None) -> None:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise FieldError(f"expected a port such as {syntax.EXPOSE_FORMS}, found {describe(item)}", line)
        found.extend(syntax.parse_expose(item))

    r.items(value, "expose", f"ports such as {syntax.EXPOSE_FORMS}", parse)
    r.kwargs["expose"] = tuple(dict.fromkeys(found))


def _links(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[tuple[str, str]] = []

    def parse(item: Any, line: int | None) -> None:
        service, alias = syntax.parse_link(as_str(item, "'service' or 'service:alias'"))
        r.ref("depends_on", service, "links", line)
        r.links.append((service, line))
        found.append((service, alias))

    r.items(value, "links", "'service' or 'service:alias' entries", parse)
    r.kwargs["links"] = tuple(dict.fromkeys(found))


def _extra_hosts(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[str] = []
    if isinstance(value, dict):
        node = as_map(value, "host names to addresses")
        for key, raw in node.items():
            addresses = str_or_list(raw, "addresses") if raw is not None else ()
            if not addresses:
                raise FieldError(f"expected an address for {key}", node.line_of(key))
            for address in addresses:
                host, ip = syntax.parse_extra_host(f"{as_str(key)}={address}")
                found.append(f"{host}:{ip}")
    else:
        def parse(item: Any, line: int | None) -> None:
            host, ip = syntax.parse_extra_host(as_str(item, "'name:address'"))
            found.append(f"{host}:{ip}")

        r.items(value, "extra_hosts", "'name:address' entries, or a mapping of names to addresses", parse)
    r.kwargs["extra_hosts"] = tuple(found)


def _ulimits(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    spec = as_map(value, "limit names to a number or to soft/hard")
    found: list[Ulimit] = []
    for key, raw in spec.items():
        line = spec.line_of(key)
        name = as_str(key)
        try:
            if isinstance(raw, dict):
                limits = as_map(raw, "soft/hard")
                unknown = [str(k) for k in limits if k not in ("soft", "hard")]
                if unknown or "soft" not in limits or "hard" not in limits:
                    raise FieldError(f"expected both 'soft' and 'hard' for ulimit {name}")
                soft = as_int(limits["soft"], "an integer limit")
                hard = as_int(limits["hard"], "an integer limit")
            else:
                soft = hard = as_int(raw, f"an integer limit, or soft/hard, for {name}")
        except FieldError as exc:
            raise FieldError(str(exc), line, f"ulimits.{name}") from exc
        if hard != -1 and (soft > hard or soft == -1):
            raise FieldError(f"the soft limit {soft} of {name} is above its hard limit {hard}", line,
                             f"ulimits.{name}")
        found.append(Ulimit(name, soft, hard))
    r.kwargs["ulimits"] = tuple(sorted(found, key=lambda u: u.name))


def _platform(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    text = as_str(value, "a platform such as 'linux/arm64'").strip()
    syntax.parse_platform(text)  # checked here; matched against the engine when the container is created
    r.kwargs["platform"] = text


def _devices(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[str] = []

    def parse(item: Any, line: int | None) -> None:
        if isinstance(item, dict):
            spec = as_map(item, "device settings (source, target, permissions)")
            for key in spec:
                if key not in ("source", "target", "permissions"):
                    raise FieldError(f"unknown key {key!r} in the long device syntax; expected source, target, "
                                     "permissions", spec.line_of(key))
            if spec.get("source") is None:
                raise FieldError("expected a 'source' (the host device) in the long device syntax", line)
            source = as_str(spec["source"])
            target = as_str(spec.get("target") or source)
            perms = as_str(spec.get("permissions") or "rwm")
            found.append(syntax.parse_device(f"{source}:{target}:{perms}"))
        else:
            text = as_str(item, f"a device such as {syntax.DEVICE_FORMS}")
            syntax.parse_device(text)
            found.append(text.strip())  # as written: the engine reads the short form itself

    r.items(value, "devices", f"devices such as {syntax.DEVICE_FORMS}", parse)
    r.kwargs["devices"] = tuple(found)


def _blkio_config(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    spec = as_map(value, "blkio settings (weight, weight_device, device_read_bps...)")
    kwargs: dict[str, Any] = {}
    for key, raw in spec.items():
        line = spec.line_of(key)
        field_name = f"blkio_config.{key}"
        if key == "weight":
            kwargs["weight"] = _blkio_weight(raw, line, field_name)
        elif key in ("weight_device", "device_read_bps", "device_read_iops", "device_write_bps",
                     "device_write_iops"):
            entries = as_list(raw, "mappings of path and rate")
            rates: list[DeviceRate] = []
            for index, entry in enumerate(entries):
                where = entries.line_of(index) or line
                item = as_map(entry, "path and rate")
                value_key = "weight" if key == "weight_device" else "rate"
                if item.get("path") is None or item.get(value_key) is None:
                    raise FieldError(f"expected 'path' and '{value_key}' in each entry", where, field_name)
                if key == "weight_device":
                    number = _blkio_weight(item[value_key], where, field_name)
                elif key.endswith("_bps"):
                    try:
                        number = parse_size(item[value_key])
                    except ValueError as exc:
                        raise FieldError(str(exc), where, field_name) from exc
                else:
                    number = as_int(item[value_key], "a number of operations per second")
                rates.append(DeviceRate(as_str(item["path"]), number))
            kwargs[key] = tuple(rates)
        else:
            r.warn(f"unknown key '{key}' is ignored", field_name, line)
    r.kwargs["blkio_config"] = BlkioConfig(**kwargs)


def _blkio_weight(raw: Any, line: int | None, field_name: str) -> int:
    weight = as_int(raw, "a weight from 10 to 1000")
    if not (10 <= weight <= 1000 or weight == 0):
        raise FieldError(f"expected a weight from 10 to 1000, found {weight}", line, field_name)
    return weight


def _dns(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    servers = str_or_list(value, "addresses")
    for server in servers:
        try:
            ipaddress.ip_address(server.strip())
        except ValueError:
            raise FieldError(f"invalid DNS server {server!r}: expected an IP address such as '1.1.1.1'") from None
    r.kwargs["dns"] = tuple(server.strip() for server in servers)


def _security_opt(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found: list[str] = []

    def parse(item: Any, line: int | None) -> None:
        text = as_str(item, "a security option such as 'no-new-privileges:true'").strip()
        name, sep, setting = text.partition("=")
        if not sep:
            name, sep, setting = text.partition(":")
        if not sep and text != "no-new-privileges":
            raise FieldError(f"invalid security option {text!r}: expected 'name=value' or 'name:value', such as "
                             "'no-new-privileges:true' or 'seccomp=./profile.json'", line)
        if name == "seccomp" and setting not in ("unconfined", "builtin"):
            # As docker compose: the profile is a file beside the compose file, sent as its content.
            path = os.path.normpath(os.path.join(r.workdir, setting))
            try:
                with open(path, encoding="utf-8") as fh:
                    profile = json.loads(fh.read())
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                raise FieldError(f"the seccomp profile {path} cannot be read as JSON ({exc})", line) from exc
            text = "seccomp=" + json.dumps(profile, separators=(",", ":"), ensure_ascii=False)
        found.append(text)

    r.items(value, "security_opt", "security options", parse)
    r.kwargs["security_opt"] = tuple(found)


def _mac_address(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    text = as_str(value, "a MAC address such as '02:42:ac:11:00:02'").strip()
    if not re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}", text):
        raise FieldError(f"expected a MAC address such as '02:42:ac:11:00:02', found {text!r}")
    r.kwargs["mac_address"] = text


def _sysctls(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    found = pairs(value, "kernel parameter names to values", allow_bare=False)
    for key, text, line in found:
        if text is None or text == "":
            raise FieldError(f"expected a value for the kernel parameter {key}", line)
    r.kwargs["sysctls"] = tuple(sorted({k: v or "" for k, v, _ in found}.items()))


# ---- healthcheck, logging, deploy ----------------------------------------------------------


def _healthcheck(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    spec = as_map(value, "healthcheck settings (test, interval, timeout, retries, start_period)")
    known = ("test", "interval", "timeout", "retries", "start_period", "disable")
    for key in (k for k in spec if not _extension(k)):
        if key == "start_interval":
            r.warn("'start_interval' is not supported and is ignored", "healthcheck.start_interval",
                   spec.line_of(key))
        elif key not in known:
            r.warn(f"unknown key '{key}' is ignored", f"healthcheck.{key}", spec.line_of(key))
    if as_bool(spec.get("disable", False)):
        r.kwargs["healthcheck"] = Healthcheck(test=("NONE",))
        return
    if spec.get("test") is None:
        r.warn("a healthcheck without 'test' is ignored: the image's own healthcheck (if any) applies "
               "with its own timings", "healthcheck")
        return
    timings: dict[str, Any] = {}
    for key in ("interval", "timeout", "start_period"):
        if spec.get(key) is not None:
            try:
                timings[key] = parse_duration(spec[key])
            except ValueError as exc:
                raise FieldError(str(exc), spec.line_of(key), f"healthcheck.{key}") from exc
    if spec.get("retries") is not None:
        try:
            retries = as_int(spec["retries"], "a number of retries")
        except FieldError as exc:
            raise FieldError(str(exc), spec.line_of("retries"), "healthcheck.retries") from exc
        if retries < 0:
            raise FieldError("expected a number of retries of 0 or more", spec.line_of("retries"),
                             "healthcheck.retries")
        timings["retries"] = retries
    r.kwargs["healthcheck"] = Healthcheck(test=_health_test(spec["test"], spec.line_of("test")), **timings)


def _health_test(value: Any, line: int | None) -> tuple[str, ...]:
    forms = "a shell command string, or a list starting with 'CMD', 'CMD-SHELL' or 'NONE'"
    if isinstance(value, str):
        if not value.strip():
            raise FieldError(f"expected {forms}, found an empty string", line, "healthcheck.test")
        return ("CMD-SHELL", value)
    if not isinstance(value, list):
        raise FieldError(f"expected {forms}, found {describe(value)}", line, "healthcheck.test")
    try:
        test = str_list(value, "strings")
    except FieldError as exc:
        raise FieldError(str(exc), exc.line or line, "healthcheck.test") from exc
    if not test or test[0] not in ("CMD", "CMD-SHELL", "NONE"):
        raise FieldError(f"expected {forms}, found {list(test)!r}", line, "healthcheck.test")
    if test[0] == "NONE":
        return ("NONE",)
    if len(test) < 2:
        raise FieldError(f"'{test[0]}' needs a command after it", line, "healthcheck.test")
    return test


def _logging(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    spec = as_map(value, "logging settings (driver, options)")
    for key in spec:
        if key not in ("driver", "options") and not _extension(key):
            r.warn(f"unknown key '{key}' is ignored", f"logging.{key}", spec.line_of(key))
    driver = as_str(spec.get("driver") or "json-file", "a logging driver name")
    options: dict[str, str] = {}
    if spec.get("options") is not None:
        opts = as_map(spec["options"], "option names to values")
        for key, raw in opts.items():
            if raw is None:
                continue
            try:
                options[str(key)] = scalar_text(raw)
            except FieldError as exc:
                raise FieldError(str(exc), opts.line_of(key), "logging.options") from exc
    r.kwargs["logging"] = LoggingSpec(driver=driver, options=tuple(sorted(options.items())))


_SWARM_ONLY = {
    "mode": "armstack runs one container per service",
    "replicas": "armstack runs one container per service",
    "placement": "there is one engine (this device) to place containers on",
    "endpoint_mode": "it selects swarm's service discovery",
    "update_config": "armstack updates containers itself (see 'armstack update')",
    "rollback_config": "armstack keeps the previous release itself",
    "labels": "they label the swarm service, not the container; use the service's 'labels:'",
}


def _deploy(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    spec = as_map(value, "deploy settings")
    for key, raw in spec.items():
        line = spec.line_of(key)
        if _extension(key):
            continue
        if key == "restart_policy":
            r.warn("'deploy.restart_policy' is for swarm and is ignored; use the service's 'restart:'",
                   "deploy.restart_policy", line)
        elif key == "resources" and isinstance(raw, dict):
            _deploy_resources(r, raw)
        elif key in _SWARM_ONLY:
            r.warn(f"'deploy.{key}' is for swarm and is ignored: {_SWARM_ONLY[key]}", f"deploy.{key}", line)
        else:
            r.warn(f"'deploy.{key}' is for swarm and is ignored", f"deploy.{key}", line)


def _deploy_resources(r: ServiceReader, spec: dict[str, Any]) -> None:
    # docker compose (v2) applies these outside swarm too: limits.memory/cpus/pids and
    # reservations.memory/devices; a CPU reservation exists only in swarm.
    lines = spec.line_of if isinstance(spec, LineDict) else (lambda key: None)
    for key, raw in spec.items():
        if _extension(key):
            continue
        if key not in ("limits", "reservations") or not isinstance(raw, dict):
            r.warn(f"'deploy.resources.{key}' is ignored", f"deploy.resources.{key}", lines(key))
            continue
        for setting, given in raw.items():
            if _extension(setting):
                continue
            line = raw.line_of(setting) if isinstance(raw, LineDict) else None
            field = f"deploy.resources.{key}.{setting}"
            try:
                if setting == "memory":
                    r.deploy_resources["mem_limit" if key == "limits" else "mem_reservation"] = parse_size(given)
                elif key == "limits" and setting == "cpus":
                    r.deploy_resources["cpus"] = _cpu_count(given)
                elif key == "limits" and setting == "pids":
                    r.deploy_resources["pids_limit"] = as_int(given, "a number of processes")
                elif key == "reservations" and setting == "devices":
                    r.deploy_resources["device_requests"] = _device_requests(given)
                elif key == "reservations" and setting in ("cpus", "generic_resources"):
                    r.warn(f"'{field}' is for swarm and is ignored: the engine only limits CPU use", field, line)
                else:
                    r.warn(f"'{field}' is ignored", field, line)
            except ValueError as exc:
                r.error(str(exc), field, getattr(exc, "line", None) or line)


def _gpus(r: ServiceReader, value: Any) -> None:
    # As docker compose: `gpus: all`, or requests whose capabilities always include "gpu".
    if value is None:
        return
    if isinstance(value, str):
        if value.strip() != "all":
            raise FieldError(f"expected 'all' or a list of GPU requests, found {value!r}")
        r.gpus.append(DeviceRequest(count=-1, capabilities=("gpu",)))
        return
    items = as_list(value, "GPU requests (driver, count, device_ids, capabilities, options)")
    for index, item in enumerate(items):
        try:
            [request] = _device_requests([item], gpu=True)
        except FieldError as exc:
            raise FieldError(str(exc), exc.line or items.line_of(index)) from exc
        caps = request.capabilities if "gpu" in request.capabilities else (*request.capabilities, "gpu")
        r.gpus.append(dataclasses.replace(request, capabilities=caps))


def _device_requests(value: Any, *, gpu: bool = False) -> tuple[DeviceRequest, ...]:
    """Device requests; ``gpu``: for ``gpus:``, where the capabilities may be left out."""
    items = as_list(value, "device requests (capabilities, driver, count, device_ids, options)")
    found: list[DeviceRequest] = []
    for index, item in enumerate(items):
        line = items.line_of(index)
        spec = as_map(item, "device request settings")
        for key in spec:
            if key not in ("capabilities", "driver", "count", "device_ids", "options"):
                raise FieldError(f"unknown key {key!r} in a device request; expected capabilities, driver, count, "
                                 "device_ids, options", spec.line_of(key))
        if spec.get("capabilities") is None and not gpu:
            raise FieldError("a device request needs 'capabilities', such as [gpu]", line)
        count_raw = spec.get("count")
        count = None
        if count_raw is not None:
            count = -1 if str(count_raw).strip() == "all" else as_int(count_raw, "a number of devices or 'all'")
        options = () if spec.get("options") is None else tuple(sorted(
            (k, v or "") for k, v, _ in pairs(spec["options"], "option names to values", allow_bare=True)))
        found.append(DeviceRequest(
            driver="" if spec.get("driver") is None else as_str(spec["driver"]),
            count=count,
            device_ids=() if spec.get("device_ids") is None else str_list(spec["device_ids"], "device ids"),
            capabilities=() if spec.get("capabilities") is None else str_list(spec["capabilities"], "capabilities"),
            options=options,
        ))
    return tuple(found)


_READERS: dict[str, Callable[[ServiceReader, Any], None]] = {
    "image": _image,
    "build": _build,
    "command": _command("command"),
    "entrypoint": _command("entrypoint"),
    "environment": _environment,
    "env_file": _env_file,
    "ports": _ports,
    "volumes": _volumes,
    "volumes_from": _volumes_from,
    "secrets": _file_mounts("secret"),
    "configs": _file_mounts("config"),
    "depends_on": _depends_on,
    "restart": _restart,
    "healthcheck": _healthcheck,
    "labels": _labels,
    "networks": _networks,
    "network_mode": _network_mode,
    "post_start": _hooks("post_start"),
    "pre_stop": _hooks("pre_stop"),
    "attach": _bool_field("attach"),
    "privileged": _bool_field("privileged"),
    "devices": _devices,
    "cap_add": _str_list_field("cap_add"),
    "cap_drop": _str_list_field("cap_drop"),
    "tmpfs": _tmpfs,
    "user": _string_field("user"),
    "working_dir": _string_field("working_dir"),
    "hostname": _string_field("hostname"),
    "mem_limit": _mem_limit,
    "cpus": _cpus,
    "logging": _logging,
    "stop_signal": _string_field("stop_signal"),
    "stop_grace_period": _stop_grace_period,
    "container_name": _container_name,
    "deploy": _deploy,
    "expose": _expose,
    "links": _links,
    "extra_hosts": _extra_hosts,
    "dns": _dns,
    "dns_search": _str_or_list_field("dns_search", "domains"),
    "dns_opt": _str_or_list_field("dns_opt", "options"),
    "sysctls": _sysctls,
    "ulimits": _ulimits,
    "shm_size": _size_field("shm_size"),
    "init": _bool_field("init"),
    "platform": _platform,
    "read_only": _bool_field("read_only"),
    "security_opt": _security_opt,
    "tty": _bool_field("tty"),
    "stdin_open": _bool_field("stdin_open"),
    "pid": _namespace_field("pid", ("host",)),
    "ipc": _namespace_field("ipc", ("host", "private", "shareable", "none")),
    "uts": _namespace_field("uts", ("host",)),
    "userns_mode": _namespace_field("userns_mode", ("host",)),
    "cgroup": _namespace_field("cgroup", ("host", "private")),
    "group_add": _str_list_field("group_add"),
    "pids_limit": _int_field("pids_limit", "a number of processes (-1: unlimited)", -1),
    "cpu_shares": _int_field("cpu_shares", "a relative CPU weight", 0),
    "cpu_quota": _int_field("cpu_quota", "microseconds of CPU time per period", -1),
    "cpu_period": _int_field("cpu_period", "a period in microseconds", 0),
    "cpu_rt_runtime": _micros_field("cpu_rt_runtime"),
    "cpu_rt_period": _micros_field("cpu_rt_period"),
    "cpuset": _string_field("cpuset"),
    "cpu_count": _windows_only(_int_field("cpu_count", "a number of CPUs", 0), "cpu_count"),
    "cpu_percent": _windows_only(_int_field("cpu_percent", "a percentage", 0, 100), "cpu_percent"),
    "mem_reservation": _size_field("mem_reservation"),
    "memswap_limit": _size_field("memswap_limit", unlimited=True),
    "mem_swappiness": _int_field("mem_swappiness", "a swappiness", 0, 100),
    "oom_score_adj": _int_field("oom_score_adj", "an OOM score adjustment", -1000, 1000),
    "oom_kill_disable": _bool_field("oom_kill_disable"),
    "device_cgroup_rules": _str_list_field("device_cgroup_rules"),
    "runtime": _string_field("runtime"),
    "cgroup_parent": _string_field("cgroup_parent"),
    "storage_opt": _pairs_field("storage_opt", "storage option names to values"),
    "blkio_config": _blkio_config,
    "mac_address": _mac_address,
    "domainname": _string_field("domainname"),
    "annotations": _pairs_field("annotations", "annotation names to values", allow_bare=True),
    "label_file": _label_file,
    "gpus": _gpus,
}
