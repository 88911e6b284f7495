"""Loading a compose file into a validated :class:`StackSpec`, or every problem it has.

The steps, none of which touches the engine::

    find the file(s) ─ read .env ─ per file: parse YAML (with lines), interpolate, include,
        extends ─ merge the files (runtime.compose.files) ─ drop services the source's
        selections leave out (disabled profiles) ─ read top level ─ read each service ─ check
        references and cycles ─ StackSpec

Errors are collected along the way and raised together as one
:class:`~runtime.errors.ComposeError`; things that are merely odd (unknown keys, unset
variables, ignored settings) come back as warnings in :class:`LoadResult`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from runtime.compose.coerce import FieldError, name_key
from runtime.compose.extends import Extender
from runtime.compose.fileobjects import read_file_objects
from runtime.compose.files import ComposeText, ModelReader, read_env_file
from runtime.compose.graph import check_cycles, check_references
from runtime.compose.model import NetworkSpec, ServiceSpec, StackSpec, VolumeSpec
from runtime.compose.profiles import select_services
from runtime.compose.report import Report
from runtime.compose.resources import read_resources
from runtime.compose.service import read_service
from runtime.compose.source import SELECTIONS, StackSource
from runtime.compose.yamlnodes import LineDict
from runtime.errors import ComposeError, Problem

COMPOSE_FILENAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
_TOP_LEVEL = ("version", "name", "services", "volumes", "networks", "secrets", "configs")
_TOP_LEVEL_IGNORED = ("models",)

# Each selection of a StackSource (runtime.compose.source.SELECTIONS) by the service key it is
# matched against (the same name) and what keeps the services it chooses: a report, the merged
# ``services`` and the names enabled in, the services that are part of the stack out.
_SELECT: dict[str, Callable[[Report, LineDict, Sequence[str]], LineDict]] = {"profiles": select_services}
# Service keys resolved before a service is read (the compatibility table lists them from here),
# by the module that resolves them: extends while the files are read, the selections here.
RESOLVED_FIRST: dict[str, str] = {"extends": Extender.__module__,
                                  **{key: select.__module__ for key, select in _SELECT.items()}}


@dataclass(frozen=True)
class LoadResult:
    stack: StackSpec
    warnings: tuple[Problem, ...]


def find_compose_file(path: str | os.PathLike[str]) -> str:
    """The absolute path of the compose file ``path`` names, or finds in the directory ``path``."""
    where = os.path.abspath(os.fspath(path))
    if os.path.isdir(where):
        for name in COMPOSE_FILENAMES:
            candidate = os.path.join(where, name)
            if os.path.isfile(candidate):
                return candidate
        raise ComposeError([Problem(where, f"no compose file in this directory; expected one of "
                                           f"{', '.join(COMPOSE_FILENAMES)}")])
    if not os.path.isfile(where):
        raise ComposeError([Problem(where, "the compose file does not exist; check the path")])
    return where


def load_stack(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    project: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    profiles: Sequence[str] = (),
) -> LoadResult:
    """Load the compose file at ``path`` (a file, or a directory holding one).

    ``path`` may also be several files, merged in order as ``docker compose -f a -f b`` does;
    relative paths in all of them are relative to the first one's directory. ``environ``
    defaults to the process environment; it wins over the ``.env`` file beside the (first)
    compose file. ``profiles`` enables services of those profiles (default:
    ``COMPOSE_PROFILES``). Raises :class:`ComposeError` listing every problem found.
    """
    return load_source(StackSource.of(path, project, profiles, environ))


def load_source(source: StackSource) -> LoadResult:
    """Load the stack ``source`` describes (see :func:`load_stack`)."""
    paths = [find_compose_file(p) for p in source.paths]
    files = [ComposeText(p) for p in paths]
    return _load(files, os.path.dirname(paths[0]), source, paths[0])


def load_text(
    text: str,
    *,
    source: str = "compose.yaml",
    workdir: str | os.PathLike[str] | None = None,
    project: str | None = None,
    environ: Mapping[str, str] | None = None,
    profiles: Sequence[str] = (),
) -> LoadResult:
    """Load compose ``text`` as if it were the file ``source`` in the directory ``workdir``."""
    base = os.path.abspath(os.fspath(workdir) if workdir is not None else os.getcwd())
    return _load([ComposeText(source, text)], base, StackSource.of(source, project, profiles, environ), source)


def _load(files: list[ComposeText], base: str, source: StackSource, main: str) -> LoadResult:
    report = Report(main)
    env = _environment(report, base, os.environ if source.env is None else source.env)
    try:
        tree = ModelReader(report).read_model(files, base, env)
    except RecursionError:
        report.error("the file nests too deeply to read (check for an 'extends' or 'include' that never ends)")
        tree = None
    if tree is None:
        raise ComposeError(report.errors, report.warnings)
    stack = _read_stack(report, tree, base, source, env)
    if report.errors or stack is None:
        raise ComposeError(report.errors, report.warnings)
    return LoadResult(stack, tuple(report.warnings))


def normalize_project_name(name: str) -> str:
    """Lower case, only ``[a-z0-9_-]``, starting with a letter or digit (docker compose's rule)."""
    return re.sub(r"[^a-z0-9_-]", "", name.lower()).lstrip("_-")


def _environment(report: Report, workdir: str, environ: Mapping[str, str]) -> dict[str, str]:
    """Variables for interpolation: the process environment over the ``.env`` file."""
    path = os.path.join(workdir, ".env")
    if not os.path.lexists(path):   # anything else (a FIFO too) is read_env_file's to refuse
        return dict(environ)
    return {**read_env_file(report, path, environ), **environ}


def _read_stack(report: Report, top: LineDict, workdir: str, source: StackSource, env: dict[str, str],
                ) -> StackSpec | None:
    """The stack of a merged, interpolated model (see runtime.compose.files), as ``source``
    selects it (its selections resolved with ``env``, the variables the files are read with)."""
    _check_top_level_keys(report, top)
    name = _project_name(report, top, workdir, source.project)
    services_node = _services_node(report, top)
    for selection in SELECTIONS:
        if services_node is not None:
            chosen = selection.resolve(source.selected(selection), env)
            services_node = _SELECT[selection.field](report, services_node, chosen)
    volumes = read_resources(report, "volumes", top.get("volumes"), top.line_of("volumes"), VolumeSpec)
    networks = read_resources(report, "networks", top.get("networks"), top.line_of("networks"), NetworkSpec)
    secrets = read_file_objects(report, "secrets", top.get("secrets"), top.line_of("secrets"), workdir, env)
    configs = read_file_objects(report, "configs", top.get("configs"), top.line_of("configs"), workdir, env)

    names: list[str] = []
    specs: list[ServiceSpec] = []
    for key, node in (services_node or {}).items():
        service = str(key)
        line = services_node.line_of(key) if isinstance(services_node, LineDict) else None
        try:
            name_key(key, "service")
        except FieldError as exc:
            report.error(str(exc), field="services", line=line)
            continue
        if not _SERVICE_NAME.fullmatch(service):
            report.error(f"invalid service name {service!r}: expected letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit", service=service, line=line)
            continue
        names.append(service)
        if isinstance(node, LineDict) and node.line is None:
            node.line = line
        try:
            spec = read_service(report, service, node, workdir, env)
        except Exception as exc:  # noqa: BLE001 - a bad file must never become a traceback
            report.error(f"could not read this service ({type(exc).__name__}: {exc})", service=service, line=line)
            spec = None
        if spec is not None:
            specs.append(spec)

    uses_default = check_references(report, names, (v.name for v in volumes), (n.name for n in networks),
                                    (s.name for s in secrets), (c.name for c in configs))
    check_cycles(report, names)
    if uses_default:
        networks = (*networks, NetworkSpec("default"))
    if report.errors or name is None or services_node is None:
        return None
    return StackSpec(project=name, services=tuple(specs), volumes=volumes, networks=networks,
                     source=os.path.abspath(os.path.join(workdir, report.file)), workdir=workdir,
                     secrets=secrets, configs=configs)


def _check_top_level_keys(report: Report, top: LineDict) -> None:
    for key in top:
        name = str(key)
        if name in _TOP_LEVEL or name.startswith("x-"):
            continue
        if name in _TOP_LEVEL_IGNORED:
            report.warn(f"top-level '{name}' is not supported by armstack and is ignored", field=name,
                        line=top.line_of(key))
        elif "services" in top:
            report.warn(f"unknown top-level key '{name}' is ignored", field=name, line=top.line_of(key))
    if "version" in top:
        version = top["version"]
        line = top.line_of("version")
        if isinstance(version, bool) or not isinstance(version, (str, int, float)):
            report.error(f"expected the version as a string such as '3.8', found {version!r}", field="version",
                         line=line)
        elif not str(version).startswith(("2", "3")):
            report.warn(f"version {version!r} is not a compose file version 2.x or 3.x; reading the file "
                        "with the current compose specification", field="version", line=line)


def _project_name(report: Report, top: LineDict, workdir: str, project: str | None) -> str | None:
    if project is not None:
        raw, where = project, "the project name given"
    elif top.get("name") is not None:
        if not isinstance(top["name"], str):
            report.error(f"expected the project name as a string, found {top['name']!r}", field="name",
                         line=top.line_of("name"))
            return None
        raw, where = top["name"], "the top-level 'name'"
    else:
        raw, where = os.path.basename(workdir.rstrip(os.sep)), "the compose file's directory name"
    name = normalize_project_name(raw)
    if not name:
        report.error(f"{where} ({raw!r}) has no letters or digits to make a project name from; expected "
                     "something like 'my-stack'", field="name" if where.startswith("the top") else None,
                     line=top.line_of("name") if "name" in top else None)
        return None
    return name


def _services_node(report: Report, top: LineDict) -> LineDict | None:
    if "services" not in top:
        looks_v1 = any(isinstance(v, dict) and ("image" in v or "build" in v) for v in top.values())
        if looks_v1:
            report.error("compose file format version 1 (services at the top level) is not supported; move the "
                         "services under a top-level 'services:' key", line=1)
        else:
            report.error("there is no 'services:' key; expected a mapping of service names to their settings",
                         line=1)
        return None
    node = top["services"]
    if not isinstance(node, dict):
        found = "nothing" if node is None else type(node).__name__
        report.error(f"expected a mapping of service names to their settings, found {found}", field="services",
                     line=top.line_of("services"))
        return None
    if not node:
        report.warn("the file defines no services", field="services", line=top.line_of("services"))
    return node if isinstance(node, LineDict) else LineDict(node)
