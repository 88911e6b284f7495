"""Compose parity: create one corpus file with docker-compose 1.29 and with the runtime, diff the engine state.

Each side runs under its own project name on the same engine. What the engine then reports
(``docker inspect`` of every container, network and volume of the project) is normalised into
plain, project-independent data and compared field by field. The normalisation (pure, in
:func:`normalise_container`, :func:`normalise_network`, :func:`normalise_volume`) removes only
what differs per object instance or per tool run, plus the short by-design list documented in
``tests/integration/test_compose_parity.py``.

Used by the test module and by ``python -m tests.integration.parity_report``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "parity"
BASE_IMAGE = "armstack-test/base:latest"
TEST_LABEL = "io.armstack.test=1"
PARITY_LABEL = "io.armstack.test.parity"
COMPOSE = "docker-compose"
P = "<project>"

# --- what is left out of the comparison, and why -------------------------------------------
# Per instance or per run: ids, times, state, the engine's own paths and dynamic addresses.
_CONTAINER_DROP = {"Id", "Created", "State", "Path", "Args", "ResolvConfPath", "HostnamePath", "HostsPath",
                   "LogPath", "RestartCount", "AppArmorProfile", "ExecIDs", "GraphDriver", "SizeRw",
                   "SizeRootFs", "Platform", "Driver", "MountLabel", "ProcessLabel", "Name"}
_NETSETTINGS_KEEP_ENDPOINT = ("Aliases", "IPAMConfig", "Links", "DriverOpts", "MacAddress")
# Bookkeeping labels of each tool (by design: names of the runtime's own labels; compose 1.29's
# hashes, version and paths). Ownership labels both set (project/service/...) are compared.
_TOOL_LABEL = re.compile(r"^(io\.armstack\.|com\.docker\.compose\.(config-hash|version|project\.working_dir|"
                         r"project\.config_files|project\.environment_file|depends_on|image|replace)$)")
ROTATION_DEFAULT = {"max-size": "10m", "max-file": "3"}
ENGINE_STOP_TIMEOUT = 10


@dataclass
class Snapshot:
    """Normalised engine state of one project: kind -> logical name -> data."""

    containers: dict[str, Any] = field(default_factory=dict)
    networks: dict[str, Any] = field(default_factory=dict)
    volumes: dict[str, Any] = field(default_factory=dict)
    log: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"containers": self.containers, "networks": self.networks, "volumes": self.volumes}


# --- normalisation (pure) ------------------------------------------------------------------

@dataclass
class Names:
    """How one side's engine names map to logical ones: ids and names of its containers -> service."""

    project: str
    containers: dict[str, str] = field(default_factory=dict)   # id, short id, name -> service
    networks: dict[str, str] = field(default_factory=dict)     # engine name -> logical
    volumes: dict[str, str] = field(default_factory=dict)

    def text(self, value: str) -> str:
        """``value`` with the project name and container ids/names made logical."""
        for key in sorted(self.containers, key=len, reverse=True):
            value = value.replace(key, f"<{self.containers[key]}>")
        return value.replace(self.project, P)


def _walk(value: Any, names: Names) -> Any:
    if isinstance(value, str):
        return names.text(value)
    if isinstance(value, list):
        return [_walk(v, names) for v in value]
    if isinstance(value, dict):
        return {names.text(str(k)): _walk(v, names) for k, v in value.items()}
    return value


def _labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in sorted((labels or {}).items()) if not _TOOL_LABEL.match(k)}


def _empty(value: Any) -> bool:
    return value is None or value == [] or value == {} or value == ""


def _prune(d: Mapping[str, Any]) -> dict[str, Any]:
    """Drop unset fields: the engine reports null, [] or "" alike for "not given"."""
    return {k: v for k, v in d.items() if not _empty(v)}


_PROPAGATIONS = ("rprivate", "private", "rshared", "shared", "rslave", "slave")
_UNITS = {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}


def _size(text: str) -> int | str:
    m = re.fullmatch(r"(\d+)([kmg]?)b?", text.strip().lower())
    return int(m.group(1)) * _UNITS[m.group(2)] if m else text


def _tmpfs_options(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        out[key] = _size(value) if key == "size" else int(value, 8) if key == "mode" else value
    return out


def mount_specs(config: Mapping[str, Any], host: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """What is mounted where, however it was asked for.

    The same mount can be requested as a ``Binds`` string, a ``Mounts`` entry, a ``Tmpfs`` entry or
    (anonymous volumes; compose 1.29 also lists every mount target) ``Config.Volumes``: each form is
    brought to one record per target with its type, source, read-only flag and options.
    """
    specs: dict[str, dict[str, Any]] = {}
    for path in config.get("Volumes") or {}:
        specs[path] = {"Type": "volume"}          # anonymous unless a mount below covers it
    for bind in host.get("Binds") or []:
        src, dst, *rest = bind.split(":")
        opts = set(rest[0].split(",")) if rest else set()
        spec: dict[str, Any] = {"Type": "bind" if src.startswith("/") else "volume", "Source": src,
                                "ReadOnly": "ro" in opts}
        prop = next((o for o in opts if o in _PROPAGATIONS), None)
        if prop:
            spec["Propagation"] = prop
        if "nocopy" in opts:
            spec["NoCopy"] = True
        specs[dst] = spec
    for m in host.get("Mounts") or []:
        spec = {"Type": m.get("Type"), "Source": m.get("Source") or None, "ReadOnly": bool(m.get("ReadOnly"))}
        if (m.get("BindOptions") or {}).get("Propagation"):
            spec["Propagation"] = m["BindOptions"]["Propagation"]
        if (m.get("VolumeOptions") or {}).get("NoCopy"):
            spec["NoCopy"] = True
        tmpfs = m.get("TmpfsOptions") or {}
        if tmpfs.get("SizeBytes"):
            spec["size"] = tmpfs["SizeBytes"]
        if tmpfs.get("Mode"):
            spec["mode"] = tmpfs["Mode"]
        specs[m["Target"]] = _prune(spec)
    for path, opts in (host.get("Tmpfs") or {}).items():
        specs[path] = {"Type": "tmpfs", **_tmpfs_options(opts or "")}
    for spec in specs.values():
        spec.setdefault("ReadOnly", False)
    return dict(sorted(specs.items()))


def _numbered_alias(link: str, services: set[str]) -> str:
    """``container:db_1`` (1.29's numbered alias of service db) as ``container:db-1``."""
    target, _, alias = link.rpartition(":")
    m = re.fullmatch(r"(.+)_(\d+)", alias)
    return f"{target}:{m.group(1)}-{m.group(2)}" if m and m.group(1) in services else link


def normalise_container(attrs: Mapping[str, Any], image_env: Iterable[str], names: Names) -> dict[str, Any]:
    out = {k: v for k, v in attrs.items() if k not in _CONTAINER_DROP}
    cid = str(attrs.get("Id", ""))
    config = dict(out.pop("Config", {}) or {})
    # Set by the engine, not the tool: the hostname defaults to the short id, the image's own env.
    if config.get("Hostname") == cid[:12]:
        config.pop("Hostname")
    config.pop("Image", None)   # by design: the runtime creates from the resolved id (top-level Image)
    config["Labels"] = _labels(config.get("Labels"))
    if config.get("StopTimeout") is None:
        config["StopTimeout"] = ENGINE_STOP_TIMEOUT
    host = dict(out.pop("HostConfig", {}) or {})
    # Ulimits are a set to the engine; 1.29 keeps the file's order, the runtime sorts by name.
    if host.get("Ulimits"):
        host["Ulimits"] = sorted(host["Ulimits"], key=lambda u: str(u.get("Name")))
    host.pop("RestartPolicy", None)   # by design: the supervisor restarts, not the engine
    log = dict(host.get("LogConfig") or {})
    if log.get("Type") == "json-file":
        # by design: the runtime's rotation default for json-file; other options are compared
        opts = {k: v for k, v in (log.get("Config") or {}).items() if not (k in ROTATION_DEFAULT and
                                                                        v == ROTATION_DEFAULT[k])}
        log["Config"] = opts
    host["LogConfig"] = log
    specs = mount_specs(config, host)
    config.pop("Volumes", None)
    for key in ("Binds", "Mounts", "Tmpfs"):
        host.pop(key, None)
    # ":rw" is the default mode of volumes_from; 1.29 spells it out.
    host["VolumesFrom"] = [v[:-3] if v.endswith(":rw") else v for v in host.get("VolumesFrom") or []]
    settings = dict(out.pop("NetworkSettings", {}) or {})
    endpoints = {}
    for net, ep in (settings.get("Networks") or {}).items():
        ep = dict(ep or {})
        aliases = [a for a in ep.get("Aliases") or [] if a not in (cid[:12], cid)]
        ep["Aliases"] = sorted(set(aliases))
        # A link's numbered alias follows each tool's container naming (1.29: db_1; compose v2 and
        # the runtime: db-1), the same by-design naming difference as the container names; the
        # order of links is not meaningful.
        services = set(names.containers.values())
        links = [_numbered_alias(link, services) for link in ep.get("Links") or []]
        if links:
            ep["Links"] = sorted(links)
        mac = ep.get("MacAddress")
        if mac and mac != config.get("MacAddress"):
            ep.pop("MacAddress")   # engine-assigned
        endpoints[names.networks.get(net, net)] = _prune({k: ep.get(k) for k in _NETSETTINGS_KEEP_ENDPOINT})
    # The engine's resulting mounts; Mode echoes the request form ("ro" vs ""), RW carries it.
    mounts = {str(m.get("Destination")): _prune({k: v for k, v in m.items() if k not in ("Mode", "Destination")})
              for m in out.pop("Mounts", []) or [] if m.get("Type") != "tmpfs"}
    for m in mounts.values():
        if m.get("Type") == "volume" and m.get("Name") and m["Name"] not in names.volumes:
            m.pop("Name")   # anonymous volume: random name
            m.pop("Source", None)
        elif m.get("Type") == "volume":
            m["Name"] = names.volumes.get(m["Name"], m["Name"])
            m.pop("Source", None)
    result = {
        "Config": _prune(config),
        "HostConfig": _prune(host),
        "Networks": endpoints,
        "Mounts": mounts,
        **_prune(out),
    }
    result["MountSpecs"] = specs
    env = set(image_env)
    if "Env" in result["Config"]:
        result["Config"]["Env"] = sorted(e for e in result["Config"]["Env"] if e not in env)
    return _walk(result, names)


def normalise_network(attrs: Mapping[str, Any], names: Names,
                      declared: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``declared``: the network's settings in the file; what it leaves to the engine is not compared."""
    declared = declared or {}
    ipam = dict(attrs.get("IPAM") or {})
    out: dict[str, Any] = {
        "Name": attrs.get("Name"),
        "Driver": attrs.get("Driver"),
        "Internal": attrs.get("Internal"),
        "Attachable": attrs.get("Attachable"),
        "EnableIPv6": attrs.get("EnableIPv6"),
        "IPAM": {"Driver": ipam.get("Driver"), "Options": ipam.get("Options") or {},
                 "Config": [_prune(c) for c in ipam.get("Config") or []]},
        "Options": attrs.get("Options") or {},
        "Labels": _resource_labels(attrs, "com.docker.compose.network", names.networks),
    }
    if not (declared.get("ipam") or {}).get("config"):
        out["IPAM"]["Config"] = "<engine-assigned>"   # a free subnet the engine picked
    if "attachable" not in declared:
        # compose 1.29 makes every network attachable; the Compose Specification leaves it unset.
        out.pop("Attachable")
    return _walk(out, names)


def normalise_volume(attrs: Mapping[str, Any], names: Names) -> dict[str, Any]:
    return _walk({
        "Name": attrs.get("Name"),
        "Driver": attrs.get("Driver"),
        "Options": attrs.get("Options") or {},
        "Labels": _resource_labels(attrs, "com.docker.compose.volume", names.volumes),
    }, names)


def _resource_labels(attrs: Mapping[str, Any], key: str, logical: Mapping[str, str]) -> dict[str, str]:
    """The object's labels; 1.29 puts the engine name, not the file's key, in ``key`` when ``name:`` is set."""
    labels = _labels(attrs.get("Labels"))
    if labels.get(key) == attrs.get("Name"):
        labels[key] = logical.get(str(attrs.get("Name")), labels[key])
    return labels


def diff(left: Any, right: Any, path: str = "") -> list[str]:
    """Field paths where ``left`` (docker-compose) and ``right`` (runtime) differ, with both values."""
    if isinstance(left, dict) and isinstance(right, dict):
        out: list[str] = []
        for key in sorted(set(left) | set(right), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in left:
                out.append(f"{sub}: compose=<unset> runtime={right[key]!r}")
            elif key not in right:
                out.append(f"{sub}: compose={left[key]!r} runtime=<unset>")
            else:
                out.extend(diff(left[key], right[key], sub))
        return out
    if left != right:
        return [f"{path}: compose={left!r} runtime={right!r}"]
    return []


def fields(differences: Iterable[str]) -> list[str]:
    """The field paths of ``diff`` lines, without values."""
    return sorted({line.split(":", 1)[0] for line in differences})


def reason(differences: Iterable[str]) -> str:
    """The differing fields, whichever container/network/volume has them: an xfail reason."""
    out = set()
    for path in fields(differences):
        kind, _, rest = path.partition(".")
        _, _, field_path = rest.partition(".")
        out.add(field_path if kind == "containers" else f"{kind[:-1]} {field_path or '(missing)'}")
    return ", ".join(sorted(out))


# --- the two sides (engine I/O) ------------------------------------------------------------

def _inspect(kind: str, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    import json
    res = subprocess.run(["docker", kind, "inspect", *ids], capture_output=True, text=True, check=True)
    data: list[dict[str, Any]] = json.loads(res.stdout)
    return data


def _ids(kind: str, label: str) -> list[str]:
    fmt = "{{.ID}}" if kind != "volume" else "{{.Name}}"
    args = ["docker", kind, "ls", "-q", "--filter", f"label={label}"] if kind != "volume" else \
        ["docker", "volume", "ls", "--format", fmt, "--filter", f"label={label}"]
    if kind == "container":
        args = ["docker", "container", "ls", "-aq", "--filter", f"label={label}"]
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return [line for line in res.stdout.split() if line]


def logical_names(project: str, section: str, declared: Mapping[str, Any]) -> dict[str, str]:
    """Engine name -> the file's key for its ``section`` ("networks"/"volumes"): ``<project>_<key>`` or ``name:``.

    By the names rather than the com.docker.compose.network/volume labels: 1.29 puts the
    engine name there when a ``name:`` is given.
    """
    out = {f"{project}_default": "default"} if section == "networks" else {}
    for key, settings in (declared.get(section) or {}).items():
        out[f"{project}_{key}"] = key
        custom = (settings or {}).get("name")
        if custom:
            out[str(custom).replace("${PARITY_ID}", project)] = key
    return out


def snapshot(project: str, service_label: str, image_env: Mapping[str, list[str]],
             declared: Mapping[str, Any] | None = None) -> Snapshot:
    """Normalised state of ``project``: its containers (by ``service_label``), networks and volumes."""
    label = f"com.docker.compose.project={project}"
    containers = _inspect("container", _ids("container", label))
    networks = _inspect("network", _ids("network", label))
    volumes = _inspect("volume", _ids("volume", label))
    names = Names(project)
    for c in containers:
        svc = c["Config"]["Labels"].get(service_label, c["Name"])
        names.containers[c["Id"]] = svc
        names.containers[c["Id"][:12]] = svc
        names.containers[c["Name"].lstrip("/")] = svc
    names.networks = logical_names(project, "networks", declared or {})
    names.volumes = logical_names(project, "volumes", declared or {})
    snap = Snapshot()
    for c in containers:
        env = image_env.get(c["Image"], [])
        svc = names.containers[c["Id"]]
        data = normalise_container(c, env, names)
        # Each tool's default naming (1.29: <project>_<service>_1; the runtime follows compose v2's
        # <project>-<service>-1) is the same choice; a container_name must come through verbatim.
        name = c["Name"].lstrip("/")
        data["Name"] = "<default>" if name in (f"{project}_{svc}_1", f"{project}-{svc}-1") \
            else name.replace(project, P)
        snap.containers[svc] = data
    for n in networks:
        logical = names.networks.get(n["Name"], n["Name"])
        settings = ((declared or {}).get("networks") or {}).get(logical) or {}
        snap.networks[logical] = normalise_network(n, names, settings)
    for v in volumes:
        snap.volumes[names.volumes.get(v["Name"], v["Name"])] = normalise_volume(v, names)
    return snap


def _env(project: str) -> dict[str, str]:
    """The environment of one side; ``PARITY_ID`` lets a file give objects project-unique custom names."""
    env = dict(os.environ)
    env["PARITY_ID"] = project
    env["ARMSTACK_EXTRA_LABELS"] = f"{TEST_LABEL},{PARITY_LABEL}=1"
    env["PYTHONPATH"] = str(ROOT)
    env["NO_COLOR"] = "1"
    return env


@dataclass
class Case:
    """One corpus file: its directory, and the external objects its file expects to exist."""

    name: str
    dir: Path

    @property
    def file(self) -> Path:
        return self.dir / "docker-compose.yml"

    def header(self) -> str:
        """The leading comment of the file: what it exercises (without the directive lines)."""
        lines = []
        for line in self.file.read_text().splitlines():
            if not line.startswith("#"):
                break
            if not re.match(r"#\s*(start-may-fail|external-(network|volume)):", line):
                lines.append(line.lstrip("# ").rstrip())
        return " ".join(lines)

    def externals(self) -> tuple[list[str], list[str]]:
        """(networks, volumes) named in ``# external-network: X`` / ``# external-volume: X`` lines."""
        nets: list[str] = []
        vols: list[str] = []
        for line in self.file.read_text().splitlines():
            m = re.match(r"#\s*external-(network|volume):\s*(\S+)", line)
            if m:
                (nets if m.group(1) == "network" else vols).append(m.group(2))
        return nets, vols

    def declared(self) -> dict[str, Any]:
        import yaml
        data: dict[str, Any] = yaml.safe_load(self.file.read_text()) or {}
        return data

    def spec_result(self) -> dict[str, Any] | None:
        """The documented result for a file 1.29 cannot read (``spec-result.yml``), if any."""
        path = self.dir / "spec-result.yml"
        if not path.exists():
            return None
        import yaml
        data: dict[str, Any] = yaml.safe_load(path.read_text())
        return data

    def publishes_ports(self) -> bool:
        return any("ports" in (svc or {}) for svc in (self.declared().get("services") or {}).values())

    def fixes_subnets(self) -> bool:
        """A network with its own ipam pools: two sides cannot hold the same subnet at once."""
        return any(isinstance(net, dict) and (net.get("ipam") or {}).get("config")
                   for net in (self.declared().get("networks") or {}).values())

    def start_may_fail(self) -> bool:
        """``# start-may-fail`` in the header: an engine may refuse to start it (e.g. privileged)."""
        return "# start-may-fail" in self.file.read_text()

    def images(self) -> list[str]:
        return sorted(set(re.findall(r"^\s*image:\s*[\"']?([^\s\"']+)", self.file.read_text(), re.M)))


def corpus() -> list[Case]:
    return [Case(d.name, d) for d in sorted(CORPUS.iterdir()) if (d / "docker-compose.yml").is_file()]


@dataclass
class Result:
    case: Case
    compose: Snapshot
    runtime: Snapshot
    differences: list[str]
    seconds: float


def _run(args: list[str], cwd: Path, env: Mapping[str, str], timeout: float) -> tuple[int, str]:
    res = subprocess.run(args, cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout)
    return res.returncode, f"$ {' '.join(args)}\n[rc={res.returncode}]\n{res.stdout}{res.stderr}"


def _compose_args(case: Case, project: str) -> list[str]:
    return [COMPOSE, "--ansi", "never", "-f", str(case.file), "-p", project]


def _runtime_args(case: Case, project: str, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "runtime", "-f", str(case.file), "-p", project, "--data-dir", str(data_dir),
            "--no-color"]


def remove_by_label(project: str) -> None:
    """Remove whatever is left of ``project`` (both sides label it com.docker.compose.project)."""
    label = f"com.docker.compose.project={project}"
    for kind, rm in (("container", ["docker", "rm", "-f", "-v"]), ("network", ["docker", "network", "rm"]),
                     ("volume", ["docker", "volume", "rm", "-f"])):
        ids = _ids(kind, label)
        if ids:
            subprocess.run([*rm, *ids], capture_output=True)


@contextlib.contextmanager
def externals_of(case: Case) -> Iterator[None]:
    """Create the external networks/volumes ``case`` names (labelled as test objects), remove them after."""
    nets, vols = case.externals()
    for n in nets:
        subprocess.run(["docker", "network", "create", "--label", TEST_LABEL, "--label", f"{PARITY_LABEL}=1", n],
                       capture_output=True, check=True)
    for v in vols:
        subprocess.run(["docker", "volume", "create", "--label", TEST_LABEL, "--label", f"{PARITY_LABEL}=1", v],
                       capture_output=True, check=True)
    try:
        yield
    finally:
        for n in nets:
            subprocess.run(["docker", "network", "rm", n], capture_output=True)
        for v in vols:
            subprocess.run(["docker", "volume", "rm", "-f", v], capture_output=True)


def image_env() -> dict[str, list[str]]:
    """Image id -> its Config.Env, so the image's own variables are not taken for the service's."""
    ids = subprocess.run(["docker", "image", "ls", "-q", "--no-trunc"], capture_output=True, text=True,
                         check=True).stdout.split()
    return {i["Id"]: list(i["Config"].get("Env") or []) for i in _inspect("image", sorted(set(ids)))}


class SideFailed(AssertionError):
    """A tool refused the file or created nothing: there is nothing to compare."""


def compare(case: Case, images: Mapping[str, list[str]], apply_timeout: float = 20) -> Result:
    """Create ``case`` with both tools, snapshot both, remove both; the field differences.

    The compose side runs ``up -d``, not ``up --no-start``: 1.29's ``--no-start`` connects no
    network but the first and cannot resolve ``network_mode: service:X`` (it needs X running),
    and the runtime's ``apply`` starts containers too, so both sides are compared started.
    A case with a ``spec-result.yml`` (a key 1.29 predates) runs the runtime side only and
    compares it with the result the Compose Specification documents, written in that file.
    """
    t0 = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    cproj, rproj = f"pc{tag}", f"pr{tag}"
    data_dir = Path(tempfile.mkdtemp(prefix="parity-"))
    expected = case.spec_result()
    with externals_of(case):
        try:
            declared = case.declared()

            def compose_side() -> Snapshot:
                if expected is not None:
                    return Snapshot(log="(not run: docker-compose 1.29 predates a key of this file)")
                rc, log = _run([*_compose_args(case, cproj), "up", "-d"], case.dir, _env(cproj), 120)
                snap = snapshot(cproj, "com.docker.compose.service", images, declared)
                snap.log = log
                if (rc != 0 and not case.start_may_fail()) or not snap.containers:
                    raise SideFailed(f"docker-compose failed on {case.file}:\n{log}")
                return snap

            def runtime_side() -> Snapshot:
                rc, log = _run([*_runtime_args(case, rproj, data_dir), "apply", "--timeout", str(apply_timeout)],
                               ROOT, _env(rproj), apply_timeout + 60)
                snap = snapshot(rproj, "io.armstack.service", images, declared)
                snap.log = log
                if not snap.containers:
                    raise SideFailed(f"the runtime created nothing for {case.file}:\n{log}")
                return snap

            if case.publishes_ports() or case.fixes_subnets():
                # One after the other: both sides would publish the same host ports or subnets.
                left = compose_side()
                remove_by_label(cproj)
                right = runtime_side()
            else:
                with ThreadPoolExecutor(2) as pool:
                    lf, rf = pool.submit(compose_side), pool.submit(runtime_side)
                    left, right = lf.result(), rf.result()
            differences = diff(left.as_dict(), right.as_dict()) if expected is None else \
                spec_diff(expected, right.as_dict())
        finally:
            # By label rather than through each tool's `down -v`: it removes the same objects (both
            # sides label everything com.docker.compose.project) in a fraction of the time, and
            # containers go by force since a `sleep` as PID 1 ignores SIGTERM. Before the external
            # objects go: a network with endpoints cannot be removed.
            remove_by_label(cproj)
            remove_by_label(rproj)
            shutil.rmtree(data_dir, ignore_errors=True)
    return Result(case, left, right, differences, round(time.monotonic() - t0, 2))


def spec_diff(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """Differences from ``expected``: ``{kind: {object: {"Section.Field": value}}}``, only the fields it names."""
    out = []
    for kind, objects in expected.items():
        for name, checks in (objects or {}).items():
            data = (actual.get(kind) or {}).get(name)
            for path, want in checks.items():
                section, _, key = str(path).partition(".")
                got = (data or {}).get(section, {}).get(key, "<unset>") if key else (data or {}).get(section, "<unset>")
                if got != want:
                    out.append(f"{kind}.{name}.{path}: spec={want!r} runtime={got!r}")
    return out


TAGS_STATE = Path(tempfile.gettempdir()) / "armstack-parity-tags.json"


@contextlib.contextmanager
def _tags_state() -> Iterator[dict[str, Any]]:
    """The shared record of who uses the parity tags, read and written under an exclusive lock."""
    import fcntl
    import json
    with open(TAGS_STATE.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            state = json.loads(TAGS_STATE.read_text()) if TAGS_STATE.exists() else {}
        except ValueError:
            state = {}
        state.setdefault("users", [])
        state.setdefault("made", [])
        # A user that died without its teardown no longer holds the tags.
        state["users"] = [pid for pid in state["users"] if os.path.exists(f"/proc/{pid}")]
        yield state
        TAGS_STATE.write_text(json.dumps(state))


@contextlib.contextmanager
def tagged_images(cases: Iterable[Case], base: str = BASE_IMAGE) -> Iterator[list[str]]:
    """Tag ``base`` under every image name the corpus references; untag afterwards.

    Several processes (pytest-xdist workers) may run corpus files at once: the tags this module
    made are removed by the last of them to finish, never a tag that existed before.
    """
    refs = sorted({ref for case in cases for ref in case.images()})
    with _tags_state() as state:
        state["users"].append(os.getpid())
        for ref in refs:
            exists = subprocess.run(["docker", "image", "inspect", ref], capture_output=True).returncode == 0
            if not exists:
                subprocess.run(["docker", "tag", base, ref], check=True, capture_output=True)
                state["made"].append(ref)
    try:
        yield refs
    finally:
        with _tags_state() as state:
            state["users"] = [pid for pid in state["users"] if pid != os.getpid()]
            if not state["users"]:
                for ref in sorted(set(state["made"])):
                    subprocess.run(["docker", "rmi", ref], capture_output=True)
                state["made"] = []
