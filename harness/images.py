"""Base images without a registry, the device engine image and the runtime image.

Debian stand-ins for ``debian:bookworm-slim`` and ``python:3.11-slim-bookworm`` are built from
Debian packages with mmdebstrap (debootstrap where mmdebstrap is missing), per architecture.
Root filesystems are cached as tarballs under ``~/.cache/armstack/rootfs`` keyed by suite +
arch + package list, so only the first run pays for a bootstrap; a cold setup
(:func:`prepare`) makes the missing ones side by side. On the host the images carry the
project's own names (``armstack/...``) so a user's real ``debian:*``/``python:*`` images are
never overwritten; inside a device's engine they are tagged with the official names so ordinary
Dockerfiles work offline.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors

from harness import rootfshooks, runtimedeps
from harness.arch import Arch, check_emulation, get_arch
from harness.errors import ImageBuildError, SetupError
from harness.progress import Update, plan, step
from harness.settings import HarnessSettings

SUITE = "bookworm"
# Bump when the way a rootfs is made changes, so cached tarballs are rebuilt.
RECIPE = "5"
# Where a wheel installs the runtime image's Dockerfile, relative to its prefix (see pyproject.toml).
SHIPPED_DOCKERFILE = "share/armstack/Dockerfile"
ASSETS = Path(__file__).resolve().parent / "assets"
LABEL_KIND = "io.armstack.base"
LABEL_KEY = "io.armstack.rootfs-key"
LABEL_SOURCE = "io.armstack.source-hash"


@dataclass(frozen=True)
class BaseKind:
    name: str
    official: tuple[str, ...]   # names it takes inside a device's engine
    packages: tuple[str, ...]   # added to debootstrap's minbase
    cmd: str
    python: bool = False
    # Whose rootfs this one's is made on, as a layer: only its own packages are installed, on a copy
    # of the other's tree (mmdebstrap). One essential bootstrap per arch: measured 2026-12 on 2
    # idle cores, emulated arm64, the debian rootfs took 130-145 s and the python one on top of it
    # 54 s, against 223 s for the python one bootstrapped alone; the trees are the same files.
    layer_on: str | None = None


BASES: dict[str, BaseKind] = {
    "debian": BaseKind("debian", ("debian:bookworm-slim", "debian:bookworm", "debian:12-slim", "debian:12"),
                       (), '["bash"]'),
    "python": BaseKind("python", ("python:3.11-slim-bookworm", "python:3.11-slim", "python:3.11", "python:3-slim"),
                       ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates"),
                       '["python3"]', python=True, layer_on="debian"),
}
# iproute2: tc for the network faults (netem), run natively in the services' namespaces.
# jq: the engine's runc wrapper edits each container's OCI config with it (runc-clock.sh).
ENGINE_PACKAGES = ("docker.io", "e2fsprogs", "iptables", "iproute2", "procps", "ca-certificates", "jq")
ENGINE_ASSETS = ("engine-entrypoint.sh", "cardfs.c", "clockshim.c", "runc-clock.sh", "clock-mounts.jq")
SHIM_DIR = "/usr/local/lib/armstack"        # in the engine: the shims (runc-clock.sh binds them)
SHIM_PATH = "/dev/.armstack-clockshim.so"   # in a stack's container (clock-mounts.jq)
CLOCKSHIM_FLAGS = "-O2 -Wall -Wextra -Werror -fPIC -shared -fno-stack-protector"
# What the engine runs of its own is compiled in build stages, on compilers installed by one apt
# run (one package index download), dpkg without its fsyncs (a throwaway stage: measured 2026-12
# on a loaded 2-core host, the install took 62 s instead of 73 s).
# The stages' layers stay in the engine's build cache, so a changed entrypoint compiles nothing
# again and a changed program only itself.
# - The card's controller (harness/assets/cardfs.c): libfuse linked statically, so the engine's
#   rootfs (and its cached tarball) needs no FUSE package.
# - The stack's clock shim (harness/assets/clockshim.c), one per ARM arch, cross-compiled natively
#   (no emulation). The build fails if a shim needs a glibc symbol newer than the arch's first
#   glibc: a preload that cannot be loaded would break every program of an older image.
BUILD_STAGES = (
    "FROM rootfs AS compilers\n"
    "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-unsafe-io "
    "gcc libc6-dev libfuse3-dev "
    "gcc-aarch64-linux-gnu libc6-dev-arm64-cross gcc-arm-linux-gnueabihf libc6-dev-armhf-cross\n"
    "FROM compilers AS cardfs\n"
    "COPY cardfs.c /src/cardfs.c\n"
    "RUN gcc -O2 -Wall -Wextra -Werror -o /cardfs /src/cardfs.c -I/usr/include/fuse3 "
    "-Wl,-Bstatic -lfuse3 -Wl,-Bdynamic -lpthread -ldl\n"
    "FROM compilers AS clockshim\n"
    "COPY clockshim.c /src/clockshim.c\n"
    + "".join(f"RUN {triplet}-gcc {CLOCKSHIM_FLAGS} -o /clockshim-{arch}.so /src/clockshim.c"
              f" && test \"$({triplet}-objdump -T /clockshim-{arch}.so | grep -o 'GLIBC_[0-9.]*' | sort -u)\""
              f" = {glibc}\n"
              for triplet, arch, glibc in (("aarch64-linux-gnu", "arm64", "GLIBC_2.17"),
                                           ("arm-linux-gnueabihf", "armv7", "GLIBC_2.4"))))


def _settings(settings: HarnessSettings | None) -> HarnessSettings:
    """The given settings, else the environment's (for callers outside a pytest session)."""
    return settings if settings is not None else HarnessSettings.from_environ()


def cache_dir(settings: HarnessSettings | None = None) -> Path:
    path = _settings(settings).cache
    path.mkdir(parents=True, exist_ok=True)
    return path


def mirror(settings: HarnessSettings | None = None) -> str:
    """The Debian mirror this machine uses (its own apt sources), so no mirror host is hard-coded."""
    if chosen := _settings(settings).debian_mirror:
        return chosen
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    if sources.exists():
        for line in sources.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            m = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+/debian/?)\s", line)
            if m:
                return m.group(1)
    # Not a Debian host (e.g. Ubuntu): debootstrap needs a Debian archive all the same.
    return "http://deb.debian.org/debian"


def prefix(settings: HarnessSettings | None = None) -> str:
    """Repository prefix of every image the kit builds (a benchmark of a cold start uses its own)."""
    return _settings(settings).image_prefix


def host_tag(kind: str, arch: Arch) -> str:
    if kind == "debian":
        return f"{prefix()}/debian:{SUITE}-slim-{arch.name}"
    if kind == "python":
        return f"{prefix()}/python:3.11-slim-{SUITE}-{arch.name}"
    if kind == "engine":
        return f"{prefix()}/device-engine:{SUITE}-{arch.name}"
    raise ValueError(kind)


def _key(arch: Arch, packages: tuple[str, ...], extra: str = "") -> str:
    text = "|".join([RECIPE, SUITE, arch.debian, "minbase", ",".join(sorted(packages)), extra])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Serialise builds of the same artefact across processes (pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _run_streaming(cmd: list[str], update: Update, what: str) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        update(line)
        tail = (tail + [line.rstrip()])[-15:]
    if proc.wait() != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}); last output:\n" + "\n".join(tail))


# mmdebstrap resolves with apt and downloads in parallel: measured 2026-12 on 2 cores, a rootfs
# took a fraction of debootstrap's time (README, "Cold setup"). debootstrap stays the fallback.
BOOTSTRAPPERS = ("mmdebstrap", "debootstrap")
# mmdebstrap's own hooks that lay out merged /usr as debootstrap does and install usr-is-merged;
# without them apt satisfies bookworm's merged-/usr dependency with usrmerge, which pulls in
# perl (40 MB) and converts the tree under emulation.
MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")


# What Docker's official -slim Debian images leave out (debuerreotype's slimify), also from later
# installs: mmdebstrap keeps these rules in the rootfs's /etc/dpkg/dpkg.cfg.d. Less to unpack under
# emulation, smaller images to load into every device.
SLIM_DPKG_RULES = (
    "path-exclude=/usr/share/doc/*", "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*", "path-exclude=/usr/share/groff/*", "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/lintian/*", "path-exclude=/usr/share/linda/*",
    "path-exclude=/usr/share/locale/*", "path-include=/usr/share/locale/locale.alias",
)


def _installed_bootstrapper() -> str | None:
    return next((tool for tool in BOOTSTRAPPERS if shutil.which(tool)), None)


def bootstrapper() -> str:
    """The tool that makes root filesystems here: mmdebstrap if installed, else debootstrap."""
    found = _installed_bootstrapper()
    if found is None:
        raise SetupError("neither mmdebstrap nor debootstrap is installed: run `make setup` "
                         "(or apt-get install mmdebstrap)")
    return found


def bootstrap_command(tool: str, arch: Arch, packages: Sequence[str], python: bool, target: Path,
                      source: str, layer_on: Path | None = None, work: Path | None = None) -> list[str]:
    """The command that makes Debian minbase + ``packages`` for ``arch``: mmdebstrap writes the
    tarball ``target`` itself (trimmed: no apt lists nor caches); debootstrap fills the
    directory ``target`` (trimmed and packed by :func:`_pack`). With mmdebstrap, ``layer_on`` is
    the rootfs tarball to install ``packages`` on, and ``work`` a private directory for its hooks."""
    layered = tool == "mmdebstrap" and layer_on is not None
    cmd = [tool, f"--arch={arch.debian}", "--variant=custom" if layered else "--variant=minbase"]
    if packages:
        cmd.append("--include=" + ",".join(packages))
    if tool == "mmdebstrap":
        cmd += [f"--dpkgopt={rule}" for rule in SLIM_DPKG_RULES]
        marks = []   # after the other customize hooks: apt's marks of what they leave installed
        if layer_on is not None:
            if work is None:
                raise ValueError("a layer's hooks need a private work directory")
            base_status = work / "base-status"
            # mmdebstrap downloads and unpacks only what the base lacks, then installs it with dpkg in
            # its "essential" step; the debs stay until its cleanup, for the native certificate files.
            cmd += [f"--setup-hook={rootfshooks.layer_setup_hook(layer_on, base_status)}", "--skip=essential/unlink"]
            marks.append(f"--customize-hook={rootfshooks.layer_customize_hook(base_status, packages)}")
        elif MERGED_USR_HOOKS.is_dir():
            cmd.append(f"--hook-dir={MERGED_USR_HOOKS}")
        if python:   # what _trim does for debootstrap: pip may install into the system, as in python:*
            cmd.append('--customize-hook=rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED')
            if arch.qemu is not None:   # the slowest maintainer scripts' work done natively
                tools = rootfshooks.native_tools()
                # A layer's packages are installed in the "essential" step: the tools are diverted before it.
                before = f"--extract-hook={rootfshooks.essential_hook(tools, unpacked=True)}" if layered \
                    else f"--essential-hook={rootfshooks.essential_hook(tools)}"
                cmd += [before, f"--customize-hook={rootfshooks.customize_hook(tools)}"]
        cmd += [*marks, "--mode=root", "--format=tar"]
    return [*cmd, SUITE, str(target), source]


def rootfs_name(arch: Arch, packages: tuple[str, ...]) -> str:
    """What a rootfs is, for progress lines: ``rootfs python armv7``."""
    base = _base_of(packages)
    kind = base.name if base else ("engine" if packages == ENGINE_PACKAGES else "+".join(packages) or "minbase")
    return f"rootfs {kind} {arch.name}"


def _base_of(packages: tuple[str, ...]) -> BaseKind | None:
    """The stand-in whose rootfs ``packages`` make, if any."""
    return next((b for b in BASES.values() if b.packages == packages), None)


def layer_base(packages: tuple[str, ...], tool: str | None) -> tuple[str, ...] | None:
    """The packages of the rootfs whose tree the rootfs of ``packages`` is made on, if it is a layer
    (only mmdebstrap makes layers; debootstrap bootstraps every rootfs on its own)."""
    return _layered_on(packages) if tool == "mmdebstrap" else None


def _layered_on(packages: tuple[str, ...]) -> tuple[str, ...] | None:
    kind = _base_of(packages)
    return BASES[kind.layer_on].packages if kind is not None and kind.layer_on is not None else None


def _rootfs_key(arch: Arch, packages: tuple[str, ...]) -> str:
    """Keyed by how it is made where layers are made: a new base makes its layers again."""
    base = _layered_on(packages)
    return _key(arch, packages, "" if base is None else f"on {_rootfs_key(arch, base)}")


def rootfs_path(arch: Arch, packages: tuple[str, ...]) -> Path:
    return cache_dir() / "rootfs" / f"{SUITE}-{arch.name}-{_rootfs_key(arch, packages)}.tar"


def rootfs_tarball(arch: Arch, packages: tuple[str, ...], python: bool = False) -> Path:
    """A cached rootfs tarball of Debian minbase + packages for arch; bootstraps on a miss, on the
    tree of its :func:`layer_base` (made first, if missing) where it has one."""
    out = rootfs_path(arch, packages)
    if out.exists():
        return out
    tool = bootstrapper()
    base = layer_base(packages, tool)
    # Outside this rootfs's lock: whoever makes the base holds only the base's.
    layer_on = rootfs_tarball(arch, base) if base is not None else None
    with _locked(out.with_suffix(".lock")):
        if out.exists():  # another process built it while we waited
            return out
        if os.geteuid() != 0:
            raise SetupError(f"building a base image runs {tool}, which needs root; run as root")
        check_emulation(arch)
        work = Path(tempfile.mkdtemp(prefix=f"rootfs-{arch.name}-", dir=out.parent))
        tmp = out.with_suffix(".tar.tmp")
        try:
            target = tmp if tool == "mmdebstrap" else work / "root"
            cmd = bootstrap_command(tool, arch, packages, python, target, mirror(), layer_on, work)
            name = rootfs_name(arch, packages)
            with step(f"{tool} {SUITE} {arch.name}" + (f" + {' '.join(packages)}" if packages else ""),
                      key=name) as update:
                # mmdebstrap unpacks under $TMPDIR: next to the cache, as debootstrap's tree is,
                # rather than in a /tmp that may be a small tmpfs.
                _run_streaming(["env", f"TMPDIR={work}", *cmd], update, f"{tool} of {name}")
                if tool != "mmdebstrap":
                    _trim(work / "root", python)
                    subprocess.run(["tar", "-C", str(work / "root"), "--numeric-owner", "-cf", str(tmp), "."],
                                   check=True)
                tmp.replace(out)   # only a finished tarball ever has the cached name
        finally:
            tmp.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
    return out


def _trim(root: Path, python: bool) -> None:
    """Make the rootfs behave like the official slim image it stands in for, and keep it small."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for p in (root / sub).glob("*"):
            if p.is_file():
                p.unlink()
    if python:
        # The official python image lets `pip install` into the system; Debian marks it
        # externally managed. Users' Dockerfiles expect the former.
        for marker in root.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
            marker.unlink()


def _rootfs_jobs(arches: Iterable[str | Arch], kinds: Iterable[str]) -> list[tuple[Arch, tuple[str, ...], bool]]:
    """The root filesystems the images ``kinds`` of ``arches`` are made from, each once."""
    kinds = list(kinds)
    tool = _installed_bootstrapper()
    jobs: list[tuple[Arch, tuple[str, ...], bool]] = []
    for name in arches:
        arch = get_arch(name)
        for kind in kinds:
            base = BASES["python" if kind == "runtime" else kind] if kind in (*BASES, "runtime") else None
            if base is None:
                continue
            under = layer_base(base.packages, tool)
            if under is not None and not rootfs_path(arch, base.packages).exists():
                jobs.append((arch, under, False))   # made first: the layer is made on its tree
            jobs.append((arch, base.packages, base.python))
    if "engine" in kinds:
        jobs.append((get_arch("amd64"), ENGINE_PACKAGES, False))
    return list({(a.name, p): (a, p, py) for a, p, py in jobs}.values())


def _image_label(client: docker.DockerClient, tag: str, label: str) -> str | None:
    try:
        return (client.images.get(tag).labels or {}).get(label)
    except docker.errors.ImageNotFound:
        return None


def _build(client: docker.DockerClient, context: Path, tag: str, arch: Arch, update: Update,
           dockerfile: str = "Dockerfile", buildargs: dict[str, str] | None = None,
           target: str | None = None, labels: dict[str, str] | None = None) -> None:
    """Build ``tag``; its ``labels`` are added by one commit afterwards (runtime.imagelabels), not
    by the engine's LABEL steps, and the image is tagged only then."""
    from runtime.imagelabels import label_image

    def build(with_labels: dict[str, str]) -> str:
        tail: list[str] = []
        built: str | None = None
        for chunk in client.api.build(path=str(context), dockerfile=dockerfile, platform=arch.platform,
                                      buildargs=buildargs or {}, target=target, labels=with_labels,
                                      rm=True, forcerm=True, decode=True):
            if "stream" in chunk:
                update(chunk["stream"])
                tail = (tail + [chunk["stream"].rstrip()])[-15:]
            if isinstance(chunk.get("aux"), dict) and "ID" in chunk["aux"]:
                built = chunk["aux"]["ID"]
            if "error" in chunk:
                raise ImageBuildError(f"building {tag} failed: {chunk['error'].strip()}\n" + "\n".join(tail))
        if built is None:
            raise ImageBuildError(f"building {tag} failed: the engine did not say which image it built")
        return built

    try:
        image = build({})
        if labels:
            image = label_image(client.api, image, labels) or build(labels)
        repo, version = docker.utils.parse_repository_tag(tag)
        client.api.tag(image, repo, version or "latest")
    except docker.errors.APIError as e:
        raise ImageBuildError(f"building {tag} failed: {e.explanation or e}") from e


def host_ca_bundle(settings: HarnessSettings | None = None) -> bytes | None:
    """The CA bundle this machine trusts, if it has one.

    Where the network passes through a TLS-inspecting proxy, only the host's bundle makes
    `pip install` or `apt-get` over https work inside containers; elsewhere it is simply the
    standard bundle. The stand-in images trust what the host trusts.
    """
    path = _settings(settings).ca_bundle
    return path.read_bytes() if path.is_file() else None


def _base_key(kind: str, arch: Arch) -> str:
    packages = BASES[kind].packages
    return _key(arch, packages, f"{hashlib.sha256(host_ca_bundle() or b'').hexdigest()}|{_rootfs_key(arch, packages)}")


def _engine_key(arch: Arch) -> str:
    entry = b"".join((ASSETS / name).read_bytes() for name in ENGINE_ASSETS)
    return _key(arch, ENGINE_PACKAGES, hashlib.sha256(entry).hexdigest())


def runtime_tag(arch: Arch, target: str = "runtime", source: str | None = None) -> str:
    """The host tag of a target of the runtime's Dockerfile (runtime, all-in-one) as this code
    builds it (``source``: its :func:`runtime_source_hash`, when the caller has it already)."""
    return f"{prefix()}/{target}:{source or runtime_source_hash()}-{arch.name}"


def runtime_requirements() -> tuple[str, ...]:
    """What the runtime's Dockerfile pip-installs into its venv."""
    return runtimedeps.requirements(runtime_sources()[0].read_text())


def engine_tag(arch: Arch) -> str:
    return f"{host_tag('engine', arch)}-{_engine_key(arch)[:8]}"


def is_current(client: docker.DockerClient, kind: str, arch: Arch) -> bool:
    """Whether the host already has image ``kind`` of ``arch`` as this code would build it."""
    if kind == "engine":
        return _image_label(client, engine_tag(arch), LABEL_KEY) == _engine_key(arch)
    if kind == "runtime":
        return _image_label(client, runtime_tag(arch), LABEL_SOURCE) == runtime_source_hash()
    return _image_label(client, host_tag(kind, arch), LABEL_KEY) == _base_key(kind, arch)


def build_base(kind: str, arch_name: str | Arch, client: docker.DockerClient | None = None) -> str:
    """Build (or reuse) the stand-in base image ``kind`` for an arch; returns its host tag."""
    base = BASES[kind]
    arch = get_arch(arch_name)
    client = client or docker.from_env()
    tag = host_tag(kind, arch)
    ca = host_ca_bundle()
    key = _base_key(kind, arch)
    if _image_label(client, tag, LABEL_KEY) == key:
        return tag
    tarball = rootfs_tarball(arch, base.packages, python=base.python)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as ctx:
        os.link(tarball, Path(ctx) / "rootfs.tar")
        dockerfile = "FROM scratch\nADD rootfs.tar /\nENV LANG=C.UTF-8\n"
        if ca is not None:
            (Path(ctx) / "ca-certificates.crt").write_bytes(ca)
            bundle = "/etc/ssl/certs/ca-certificates.crt"
            # pip in a venv uses its vendored certifi unless told: point every client at the bundle.
            dockerfile += (f"COPY ca-certificates.crt {bundle}\n"
                           f"ENV SSL_CERT_FILE={bundle} PIP_CERT={bundle} REQUESTS_CA_BUNDLE={bundle}\n")
        (Path(ctx) / "Dockerfile").write_text(dockerfile + f"CMD {base.cmd}\n")
        with step(f"image {tag}", key=f"image {kind} {arch.name}") as update:
            _build(client, Path(ctx), tag, arch, update, labels={LABEL_KIND: kind, LABEL_KEY: key})
    return tag


def build_engine(client: docker.DockerClient | None = None) -> str:
    """The device engine image: native dockerd + tools to make and mount the SD card."""
    arch = get_arch("amd64")
    client = client or docker.from_env()
    # Keyed like the runtime image: checkouts with different entrypoints share an engine without
    # rebuilding each other's image (and the card templates made with it) in turns.
    tag = engine_tag(arch)
    key = _engine_key(arch)
    if _image_label(client, tag, LABEL_KEY) == key:
        return tag
    tarball = rootfs_tarball(arch, ENGINE_PACKAGES)
    with tempfile.TemporaryDirectory(dir=tarball.parent) as ctx:
        os.link(tarball, Path(ctx) / "rootfs.tar")
        for name in ENGINE_ASSETS:
            shutil.copy(ASSETS / name, Path(ctx) / name)
        (Path(ctx) / "Dockerfile").write_text(
            "FROM scratch AS rootfs\nADD rootfs.tar /\n" + BUILD_STAGES
            + "FROM rootfs\nCOPY --from=cardfs /cardfs /usr/local/bin/cardfs\n"
            f"COPY --from=clockshim /clockshim-arm64.so /clockshim-armv7.so {SHIM_DIR}/\n"
            f"COPY clock-mounts.jq {SHIM_DIR}/clock-mounts.jq\n"
            "COPY runc-clock.sh /usr/local/sbin/runc\n"
            "COPY engine-entrypoint.sh /usr/local/bin/engine-entrypoint\n"
            f"RUN chmod 755 /usr/local/bin/engine-entrypoint /usr/local/sbin/runc"
            f" && echo {SHIM_PATH} > {SHIM_DIR}/ld.so.preload\n"
            'ENTRYPOINT ["/usr/local/bin/engine-entrypoint"]\n')
        with step(f"image {tag}", key=f"image engine {arch.name}") as update:
            _build(client, Path(ctx), tag, arch, update, labels={LABEL_KIND: "engine", LABEL_KEY: key})
    return tag


def runtime_sources() -> tuple[Path, Path]:
    """(Dockerfile, runtime package directory) the runtime image is built from.

    In a checkout both are the repository's; from an installed wheel the package is the
    installed one and the Dockerfile the copy the wheel ships under ``share/armstack``.
    """
    import runtime

    package = Path(runtime.__file__).resolve().parent
    checkout = package.parent / "Dockerfile"
    if checkout.is_file():
        return checkout, package
    # Where pip put the wheel's data files: RECORD says so for a normal install; a --target
    # install records a path it then does not use (its files sit next to the packages).
    candidates = [Path(sys.prefix, SHIPPED_DOCKERFILE), package.parent / SHIPPED_DOCKERFILE]
    try:
        dist = importlib.metadata.distribution("armstack")
        candidates[:0] = [Path(str(dist.locate_file(f))) for f in dist.files or [] if f.name == "Dockerfile"]
    except importlib.metadata.PackageNotFoundError:
        pass
    found = next((c.resolve() for c in candidates if c.is_file()), None)
    if found is None:
        raise ImageBuildError(f"no Dockerfile for the runtime image: not in a checkout ({checkout}) and none "
                              f"installed with the armstack package (looked in {', '.join(map(str, candidates))}); "
                              "reinstall it: pip install armstack")
    return found, package


def _runtime_files(package: Path) -> list[Path]:
    return sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def runtime_source_hash() -> str:
    """Hash of what goes into the runtime image, so a code change rebuilds it (and only then)."""
    dockerfile, package = runtime_sources()
    h = hashlib.sha256(b"Dockerfile\0" + dockerfile.read_bytes() + b"\0")
    for p in _runtime_files(package):
        h.update(str(p.relative_to(package.parent)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_runtime(arch_name: str | Arch, client: docker.DockerClient | None = None, tag: str | None = None) -> str:
    """The runtime image for an arch, on top of the python stand-in; returns its host tag.

    ``tag`` names it (e.g. for publishing); by default it is keyed by the source hash. The build
    context holds just the Dockerfile and the runtime package, so the same code path serves a
    checkout and an installed wheel.
    """
    return _build_target(get_arch(arch_name), "runtime", client, tag)


def _build_target(arch: Arch, target: str, client: docker.DockerClient | None, tag: str | None) -> str:
    """A target of the runtime's Dockerfile on the python stand-in, tagged by the source hash."""
    client = client or docker.from_env()
    python = build_base("python", arch, client)
    source = runtime_source_hash()
    tag = tag or runtime_tag(arch, target, source)
    if _image_label(client, tag, LABEL_SOURCE) == source:
        return tag
    base = build_runtime_deps(arch, python, client)   # only for a build: it reads the Dockerfile, asks the engine
    dockerfile, package = runtime_sources()
    with tempfile.TemporaryDirectory(prefix=f"armstack-{target}-") as tmp, \
            step(f"image {tag}", key=f"image {target} {arch.name}") as update:
        context = Path(tmp)
        shutil.copy2(dockerfile, context / "Dockerfile")
        shutil.copytree(package, context / "runtime", ignore=shutil.ignore_patterns("__pycache__"))
        _build(client, context, tag, arch, update, buildargs={"BASE": base}, target=target,
               labels={LABEL_SOURCE: source, LABEL_KIND: target})
    return tag


def runtime_deps_tag(arch: Arch, base: str, client: docker.DockerClient) -> tuple[str, str, tuple[str, ...]]:
    """(tag, key, requirements) of the runtime's dependencies installed on the image ``base``."""
    wanted = runtime_requirements()
    key = hashlib.sha256(f"{runtimedeps.key(arch, wanted)}|{client.images.get(base).id}".encode()).hexdigest()[:16]
    return f"{prefix()}/runtime-deps:{key}-{arch.name}", key, wanted


def build_runtime_deps(arch: Arch, base: str, client: docker.DockerClient) -> str:
    """``base`` (the python stand-in) with the runtime's venv and dependencies in place, made on the
    host (harness.runtimedeps); ``base`` itself where the host cannot, and the image installs them."""
    tag, key, wanted = runtime_deps_tag(arch, base, client)
    if _image_label(client, tag, LABEL_KEY) == key:
        return tag
    with step(f"image {tag}", key=f"image runtime-deps {arch.name}") as update:
        try:
            tree, compiled = runtimedeps.site_packages(arch, wanted, cache_dir())
        except ImageBuildError as e:
            update(f"the runtime image installs its dependencies itself: {e}")
            return base
        with tempfile.TemporaryDirectory(prefix="armstack-deps-") as tmp:
            shutil.copytree(tree, Path(tmp) / "site-packages")
            (Path(tmp) / "Dockerfile").write_text(runtimedeps.dockerfile(base, compiled))
            _build(client, Path(tmp), tag, arch, update, labels={LABEL_KIND: "runtime-deps", LABEL_KEY: key})
    return tag


def build_all_in_one(client: docker.DockerClient | None = None, tag: str | None = None) -> str:
    """The all-in-one device image (dockerd + runtime, ``--target all-in-one``) for amd64.

    Native only: an ARM dockerd cannot start containers under QEMU user mode, so the image is
    booted on the host's own architecture. Keyed by the runtime's source hash like the runtime
    image; the engine packages sit in a layer below the runtime's code, so a code change
    rebuilds only the top layers.
    """
    return _build_target(get_arch("amd64"), "all-in-one", client, tag)


# What each step of a cold setup costs relative to the others, for the share each progress line
# shows (absolute times depend on the machine and its load): seconds seen on a 2-core x86_64
# machine with QEMU 10, both arches' chains side by side (python bench.cold_setup).
EXPECTED_SECONDS = {"rootfs python": 66.0, "rootfs debian": 195.0, "rootfs engine": 72.0,
                    "image runtime-deps": 13.0, "image runtime": 6.0, "image python": 6.0, "image debian": 4.0,
                    "image engine": 51.0}


def setup_steps(client: docker.DockerClient, arches: Sequence[Arch], kinds: Sequence[str]) -> dict[str, float]:
    """The steps a setup of images ``kinds`` for ``arches`` still has to run, with their usual cost:
    the images not current on the host, and the root filesystems of those not yet cached."""
    images: list[tuple[str, Arch]] = []
    for arch in arches:
        for kind in kinds:
            if kind == "engine":
                continue
            if kind == "runtime" and not is_current(client, "runtime", arch):
                images.append(("python", arch))   # the runtime image is built on the python one
                if not is_current(client, "python", arch):   # ... with the venv made on the host
                    images.append(("runtime-deps", arch))
            images.append((kind, arch))
    if "engine" in kinds:
        images.append(("engine", get_arch("amd64")))
    steps: dict[str, float] = {}
    for kind, arch in dict.fromkeys(images):
        if kind != "runtime-deps" and is_current(client, kind, arch):
            continue
        if kind not in ("runtime", "runtime-deps"):
            for a, packages, _ in _rootfs_jobs([arch], [kind]):
                if not rootfs_path(a, packages).exists():
                    steps[rootfs_name(a, packages)] = EXPECTED_SECONDS[f"rootfs {kind}"]
        steps[f"image {kind} {arch.name}"] = EXPECTED_SECONDS[f"image {kind}"]
    # Root filesystems first: they run side by side before any image is built.
    return dict(sorted(steps.items(), key=lambda kv: not kv[0].startswith("rootfs")))


def _chains(arches: Sequence[Arch], kinds: Sequence[str]) -> list[list[tuple[str, Arch]]]:
    """The images to make as independent chains, each in the order its images need each other: the
    engine; per arch python then runtime (built on it), and debian. Each image makes its root
    filesystem when it is not cached yet."""
    chains: list[list[tuple[str, Arch]]] = []
    if "engine" in kinds:
        chains.append([("engine", get_arch("amd64"))])
    for arch in arches:
        python = [(k, arch) for k in ("python", "runtime") if k in kinds]
        chains += [python] if python else []
        chains += [[(k, arch)] for k in kinds if k not in ("engine", "python", "runtime")]
    return chains


def prepare(arches: Sequence[str | Arch], kinds: Sequence[str],
            client: docker.DockerClient | None = None) -> dict[tuple[str, str], str]:
    """Make (or reuse) the images ``kinds`` (engine, python, debian, runtime) for ``arches``; returns
    their host tags by (kind, arch name), the engine's under its own arch (amd64 on this host).

    A cold setup runs the chains of :func:`_chains` side by side: an image is built as soon as its
    own root filesystem is there, not once every one is (the engine's, native, is there long before
    the emulated ones). Each step's progress line says its share of the whole, and a last line what
    each one took.
    """
    from concurrent.futures import ThreadPoolExecutor

    client = client or docker.from_env()
    targets = [get_arch(a) for a in arches]
    tags: dict[tuple[str, str], str] = {}

    def make(chain: list[tuple[str, Arch]]) -> None:
        for kind, arch in chain:
            if kind == "engine":
                tags[kind, arch.name] = build_engine(client)
            elif kind == "runtime":
                tags[kind, arch.name] = build_runtime(arch, client)
            else:
                tags[kind, arch.name] = build_base(kind, arch, client)

    with plan("setup", setup_steps(client, targets, kinds)):
        chains = _chains(targets, kinds)
        early = [a for a in targets if "runtime" in kinds and not is_current(client, "runtime", a)]
        with ThreadPoolExecutor(max_workers=max(1, len(chains) + len(early))) as pool:
            for arch in early:
                pool.submit(_prefetch_runtime_deps, arch)
            for future in [pool.submit(make, chain) for chain in chains]:
                future.result()
    return tags


def _prefetch_runtime_deps(arch: Arch) -> None:
    """The runtime's dependencies made on the host while the root filesystems are bootstrapped:
    they need no image, and the runtime's chain finds them in the cache (10 s less on its path)."""
    with suppress(ImageBuildError):   # the chain tries again and says why; the image then installs them
        runtimedeps.site_packages(arch, runtime_requirements(), cache_dir())


def load_into(target: docker.DockerClient, source: docker.DockerClient, tag: str, names: tuple[str, ...]) -> None:
    """Copy an image from the host engine into a device engine and give it ``names`` there."""
    image = source.images.get(tag)
    try:
        target.images.get(image.id)   # an image id is a content digest: same id, same image
    except docker.errors.ImageNotFound:
        with step(f"load {tag} into device"):
            target.images.load(image.save(chunk_size=1 << 20))
    loaded = target.images.get(image.id)
    for name in names:
        repo, _, version = name.partition(":")
        loaded.tag(repo, version or "latest")


def list_images(client: docker.DockerClient | None = None) -> list[dict[str, str]]:
    client = client or docker.from_env()
    rows = []
    for img in client.images.list(filters={"label": LABEL_KIND}):
        attrs = img.attrs
        rows.append({
            "tag": ", ".join(img.tags) or img.short_id,
            "kind": (img.labels or {}).get(LABEL_KIND, ""),
            "arch": attrs.get("Architecture", "") + (f"/{attrs['Variant']}" if attrs.get("Variant") else ""),
            "size": f"{attrs.get('Size', 0) / 1e6:.0f} MB",
            "created": attrs.get("Created", "")[:19],
        })
    return sorted(rows, key=lambda r: r["tag"])
