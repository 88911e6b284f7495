"""Reading one service definition into a :class:`ServiceSpec`.

Each top-level key of a service has a reader in ``_READERS``. A reader raises
:class:`FieldError` for a wrong value (it becomes an error naming service, field and line) or
records several problems itself when a list has more than one bad item. References to other
parts of the file (services, volumes, networks) are recorded as :class:`Ref` and checked by
:mod:`runtime.compose.graph` once every service has been read.
"""

from __future__ import annotations

import difflib
import os
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
from runtime.compose.files import UnreadableFile, read_text_file
from runtime.compose.model import (
    BuildSpec,
    Dependency,
    DependencyCondition,
    Healthcheck,
    LoggingSpec,
    PortSpec,
    ServiceSpec,
    VolumeMount,
    VolumesFrom,
)
from runtime.compose.report import Ref, RefKind, Report
from runtime.compose.units import parse_duration, parse_size
from runtime.compose.yamlnodes import LineDict, LineList

CONDITIONS = ("service_started", "service_healthy", "service_completed_successfully")

# Keys docker compose knows that the runtime does not act on: a warning says so by name.
_UNSUPPORTED = {
    "expose": "ports are reachable on the stack network without it",
    "links": "services reach each other by name on the stack network; use depends_on for start order",
    "external_links": "only services of this stack are managed",
    "extends": "copy the settings, or share them with a YAML anchor and a merge key (<<:)",
    "profiles": "every service of the file is run",
}
_IGNORED = frozenset({
    "extra_hosts", "dns", "dns_search", "dns_opt", "sysctls", "ulimits", "shm_size", "init", "platform",
    "secrets", "configs", "mem_reservation", "memswap_limit", "mem_swappiness", "cpu_shares", "cpu_quota",
    "cpu_period", "cpuset", "cpu_count", "cpu_percent", "pid", "ipc", "security_opt", "read_only",
    "stdin_open", "tty", "domainname", "mac_address", "oom_score_adj", "oom_kill_disable", "group_add",
    "pull_policy", "runtime", "cgroup_parent", "userns_mode", "uts", "isolation", "storage_opt",
    "blkio_config", "device_cgroup_rules", "pids_limit", "annotations", "attach", "develop", "scale",
    "credential_spec", "gpus", "post_start", "pre_stop", "volume_driver", "log_driver", "log_opt", "net",
})
_BUILD_IGNORED = frozenset({
    "cache_from", "cache_to", "labels", "network", "shm_size", "extra_hosts", "platforms", "tags", "ssh",
    "secrets", "pull", "no_cache", "isolation", "additional_contexts", "privileged", "entitlements", "ulimits",
})


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
    deploy_limits: dict[str, Any] = field(default_factory=dict)
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
    if "mem_limit" not in kw and "memory" in r.deploy_limits:
        kw["mem_limit"] = r.deploy_limits["memory"]
    if "cpus" not in kw and "cpus" in r.deploy_limits:
        kw["cpus"] = r.deploy_limits["cpus"]
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
        if value is None:
            return
        if isinstance(value, list):
            # `[echo, yes]` reads `yes` as a boolean; the word is what the command wants.
            items = as_list(value, "strings")
            r.kwargs[key] = tuple(_item_text(items, i) for i in range(len(items)))
            return
        text = as_str(value, "a string or a list of strings")
        try:
            r.kwargs[key] = tuple(shellwords.split(text))
        except ValueError as exc:
            raise FieldError(f"cannot split {describe(text)} into words ({exc}); check the quotes or use a list"
                             ) from exc

    return read


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


def _container_name(r: ServiceReader, value: Any) -> None:
    r.warn("'container_name' is ignored: the runtime names containers itself (<project>-<service>-1)",
           "container_name")


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
    if value is None:
        return
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
                r.error(f"the env file {path} does not exist", "env_file", line)
            continue
        except UnreadableFile as exc:
            r.error(f"the env file {path} cannot be used: {exc}", "env_file", line)
            continue
        parsed = parse_env(text, r.env.get, file_wins=True)
        for bad_line, message in parsed.problems:
            r.report.error(message, service=r.name, field="env_file", line=bad_line, file=path)
        for bad_line, name in parsed.undefined:
            r.report.warn(f"the variable {name} is not set; using an empty string", service=r.name,
                          field="env_file", line=bad_line, file=path)
        r.env_files.extend(parsed.values.items())


# ---- build ---------------------------------------------------------------------------------


def _build(r: ServiceReader, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        r.kwargs["build"] = BuildSpec(context=_context(r, as_str(value)))
        return
    spec = as_map(value, "build settings (context, dockerfile, args, target), or a context path")
    args: list[tuple[str, str]] = []
    for key in spec:
        name = str(key)
        line = spec.line_of(key)
        if name in ("context", "dockerfile", "target", "args") or name.startswith("x-"):
            continue
        if name == "dockerfile_inline":
            r.error("'dockerfile_inline' is not supported; put the Dockerfile in the build context",
                    "build.dockerfile_inline", line)
        elif name in _BUILD_IGNORED:
            r.warn(f"'{name}' is not supported by armstack and is ignored", f"build.{name}", line)
        else:
            r.warn(f"unknown key '{name}' is ignored", f"build.{name}", line)
    try:
        context = _context(r, as_str(spec.get("context", "."), "a directory path"))
        dockerfile = as_str(spec.get("dockerfile") or "Dockerfile", "a file path")
        target = None if spec.get("target") is None else as_str(spec["target"])
    except FieldError as exc:
        raise FieldError(str(exc), exc.line) from exc
    if spec.get("args") is not None:
        for key, text, _line in pairs(spec["args"], "build argument names to values", allow_bare=True):
            text = r.env.get(key) if text is None else text
            if text is not None:
                args.append((key, text))
    r.kwargs["build"] = BuildSpec(context=context, dockerfile=dockerfile, args=tuple(sorted(dict(args).items())),
                                  target=target)


def _context(r: ServiceReader, text: str) -> str:
    if "://" in text or text.startswith(("git@", "github.com/")):
        raise FieldError(f"the build context {text!r} is remote; only local directories are supported",
                         field="build")
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
    for key in spec:
        if _extension(key):
            continue
        if key in ("bind", "volume", "tmpfs", "consistency"):
            r.warn(f"'{key}' mount options are ignored", "volumes", spec.line_of(key))
        elif key not in ("type", "source", "target", "read_only"):
            r.warn(f"unknown key {key!r} in the long volume syntax is ignored", "volumes", spec.line_of(key))
    if kind == "bind":
        if source is None:
            raise FieldError("a bind mount needs a 'source' (the host path)", line)
        source = syntax.bind_source(source, r.workdir, r.env.get("HOME"))
    elif kind == "tmpfs":
        source = None
    return VolumeMount(type=cast(Any, kind), target=target, source=source,
                       read_only=as_bool(spec.get("read_only", False)))


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
            if raw is not None:
                settings = as_map(raw, "dependency settings (condition)")
                condition = as_str(settings.get("condition", "service_started"))
                for extra in settings:
                    if extra not in ("condition", "restart", "required") and not _extension(extra):
                        r.warn(f"unknown key {extra!r} is ignored", f"depends_on.{name}", settings.line_of(extra))
            if condition not in CONDITIONS:
                r.error(f"unknown condition {condition!r}; expected one of {', '.join(CONDITIONS)}",
                        f"depends_on.{name}", line)
                continue
            r.ref("depends_on", name, "depends_on", line)
            found.append(Dependency(name, cast(DependencyCondition, condition)))
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
    if isinstance(value, dict):
        for key, raw in value.items():
            line = value.line_of(key) if isinstance(value, LineDict) else None
            name = _name_key(key, "network", line)
            if raw is not None:
                settings = as_map(raw, "network settings")
                for extra in (k for k in settings if not _extension(k)):
                    why = "aliases are" if extra == "aliases" else f"'{extra}' is"
                    r.warn(f"{why} not supported and ignored; services are reachable by their name",
                           f"networks.{name}", settings.line_of(extra))
            names.append(name)
            r.ref("network", name, "networks", line)
    else:
        items = as_list(value, "network names, or a mapping of network names to settings")
        for index, item in enumerate(items):
            name = as_str(item, "each item to be a network name")
            names.append(name)
            r.ref("network", name, "networks", items.line_of(index))
    r.kwargs["networks"] = tuple(dict.fromkeys(names))


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
        else:
            r.warn(f"'deploy.{key}' is for swarm and is ignored", f"deploy.{key}", line)


def _deploy_resources(r: ServiceReader, spec: dict[str, Any]) -> None:
    # docker compose (v2) applies resource limits outside swarm too, so honour the two we model.
    lines = spec.line_of if isinstance(spec, LineDict) else (lambda key: None)
    for key, raw in spec.items():
        if _extension(key):
            continue
        if key != "limits" or not isinstance(raw, dict):
            r.warn(f"'deploy.resources.{key}' is ignored", f"deploy.resources.{key}", lines(key))
            continue
        for limit, setting in raw.items():
            if _extension(limit):
                continue
            line = raw.line_of(limit) if isinstance(raw, LineDict) else None
            field = f"deploy.resources.limits.{limit}"
            try:
                if limit == "memory":
                    r.deploy_limits["memory"] = parse_size(setting)
                elif limit == "cpus":
                    r.deploy_limits["cpus"] = _cpu_count(setting)
                else:
                    r.warn(f"'{field}' is ignored", field, line)
            except ValueError as exc:
                r.error(str(exc), field, line)


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
    "depends_on": _depends_on,
    "restart": _restart,
    "healthcheck": _healthcheck,
    "labels": _labels,
    "networks": _networks,
    "network_mode": _network_mode,
    "privileged": _bool_field("privileged"),
    "devices": _str_list_field("devices"),
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
}
