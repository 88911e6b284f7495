"""mmdebstrap hooks: two kinds of maintainer-script work done on the host while a foreign rootfs is
made, and apt's marks for a rootfs made as a layer on another.

Bootstrapping an ARM rootfs runs every maintainer script under QEMU, where each process start
costs tens of milliseconds. Two kinds dominate the python stand-in's bootstrap (measured with
timestamps on mmdebstrap's output, emulated arm64, 300 s in all): ``update-ca-certificates``
(two processes per certificate, 64 s) and byte-compiling Python (``py_compile``/``py3compile``
in six postinsts, about 50 s). Their results do not depend on the CPU: symbolic links, a bundle
of PEM text, and ``.pyc`` files, which are the same for every architecture of one Python version.

So mmdebstrap's essential hook diverts both tools to no-ops before those packages are configured
(:func:`essential_hook`), and its customize hook (:func:`customize_hook`) does their work here,
natively (:func:`certificates`, :func:`bytecode`), then puts the real tools back. The certificate
files themselves are held back by a dpkg rule until then (ca-certificates' debconf script spends
another 40 s per arch grepping for each file it finds; with none it takes its first-install answer,
which enables the same list). Each is used only where the host can do the work: ``openssl`` and
``dpkg-deb`` on the host for the certificates, the image's Python version for the byte code.

A layer (the python stand-in on the debian one) is installed by mmdebstrap's dpkg, which leaves
apt's "automatically installed" marks alone; :func:`mark_automatic` sets them as the one apt run of
a direct bootstrap does, so ``apt-get autoremove`` in a user's image behaves the same.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

PYTHON = "3.11"   # the stand-in's (Debian bookworm's) Python
# (path in the rootfs, what the bootstrap runs instead): each is diverted by dpkg, so the package's
# own file lands beside it and comes back when the diversion is removed.
CERT_TOOL = ("/usr/sbin/update-ca-certificates", "#!/bin/sh\nexit 0\n")
BYTECODE_TOOLS = (
    ("/usr/bin/py3compile", "#!/bin/sh\nexit 0\n"),
    # Run as a script by the python3.11 postinsts; nothing imports it during the bootstrap.
    (f"/usr/lib/python{PYTHON}/py_compile.py", '"""Byte-compiled on the host after the bootstrap."""\n'),
)
DIVERTED = ".native"
# Where Debian's python packages keep modules they byte-compile in their postinsts.
PYTHON_DIRS = (f"usr/lib/python{PYTHON}", "usr/lib/python3/dist-packages", "usr/share/python3")
CERTS = "usr/share/ca-certificates"
LOCAL_CERTS = "usr/local/share/ca-certificates"
ETC_CERTS = "etc/ssl/certs"
BUNDLE = "ca-certificates.crt"
# A dpkg rule in place only during the bootstrap: the certificate files are not unpacked until the
# package is configured (see essential_hook), then taken from the package here.
HOLD_CERTS = "/etc/dpkg/dpkg.cfg.d/00armstack-bootstrap"
HOLD_CERTS_RULE = "path-exclude=/usr/share/ca-certificates*\n"
ARCHIVES = "var/cache/apt/archives"


def native_tools() -> list[tuple[str, str]]:
    """The tools whose work this host can do natively."""
    tools = []
    if shutil.which("openssl") and shutil.which("dpkg-deb"):
        tools.append(CERT_TOOL)
    if sys.version_info[:2] == tuple(map(int, PYTHON.split("."))):
        tools.extend(BYTECODE_TOOLS)
    return tools


def essential_hook(tools: list[tuple[str, str]], unpacked: bool = False) -> str:
    """Shell for mmdebstrap's ``--essential-hook`` (``$1`` = the rootfs): divert ``tools`` to their
    no-op stand-ins before the remaining packages are installed and configured. ``unpacked``: the
    packages' files are in the tree already (mmdebstrap's extract step, run as an extract hook)."""
    lines = []
    if CERT_TOOL in tools:
        # ca-certificates' debconf script asks two emulated greps per certificate file it finds (40 s
        # under emulation); with none unpacked it takes its first-install answer at once: every
        # certificate of its list enabled, what the long way gives too. The files follow natively.
        lines.append(f'mkdir -p "$1{os.path.dirname(HOLD_CERTS)}" && printf %s {shlex.quote(HOLD_CERTS_RULE)} '
                     f'> "$1{HOLD_CERTS}"')
        if unpacked:
            lines.append(f'rm -rf "$1/{CERTS}"')
    for path, stub in tools:
        lines.append(f"chroot \"$1\" dpkg-divert --quiet --local --rename --divert {path}{DIVERTED} --add {path}")
        lines.append(f'mkdir -p "$1{os.path.dirname(path)}" && printf %s {shlex.quote(stub)} > "$1{path}" '
                     f'&& chmod 755 "$1{path}"')
    return " && ".join(lines) or "true"


def _helper() -> str:
    """This module run as a program, in shell: stdlib only, so from a checkout or a wheel alike."""
    return shlex.join([sys.executable, str(Path(__file__).resolve())])


def customize_hook(tools: list[tuple[str, str]]) -> str:
    """Shell for mmdebstrap's ``--customize-hook``: the tools put back, their work done here. The
    byte code comes last, so ``py_compile.py``'s own is made from the real module, not its stub."""
    if not tools:
        return "true"
    work = _helper()
    lines = []
    if CERT_TOOL in tools:
        lines += [f'rm -f "$1{HOLD_CERTS}"', f'{work} --certificates "$1"']
    for path, _ in tools:
        lines.append(f'rm -f "$1{path}" && chroot "$1" dpkg-divert --quiet --local --rename --remove {path}')
    if any(t in tools for t in BYTECODE_TOOLS):
        lines.append(f'{work} --bytecode "$1"')
    return " && ".join(lines)


def layer_setup_hook(base: Path, base_status: Path) -> str:
    """Shell for mmdebstrap's ``--setup-hook`` of a layer: the base rootfs's tree (tarball ``base``)
    in place before anything is downloaded, its dpkg status kept at ``base_status`` (outside the
    rootfs) for :func:`layer_customize_hook`."""
    return f'tar -C "$1" -xf {shlex.quote(str(base))} && cp "$1/var/lib/dpkg/status" {shlex.quote(str(base_status))}'


def layer_customize_hook(base_status: Path, requested: Sequence[str]) -> str:
    """Shell for mmdebstrap's ``--customize-hook`` of a layer: apt's marks (:func:`mark_automatic`)."""
    return (f'{_helper()} --mark-automatic {shlex.quote(str(base_status))} --apt-config "$MMDEBSTRAP_APT_CONFIG" '
            f'--requested {shlex.quote(",".join(requested))} "$1"')


def installed_packages(status: str) -> set[str]:
    """The packages a dpkg status file says are installed (``name`` or ``name:arch`` as written)."""
    found = set()
    for stanza in status.split("\n\n"):
        fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line[0].isspace())
        if fields.get("Status", "").split()[-1:] == ["installed"] and "Package" in fields:
            found.add(fields["Package"].strip())
    return found


def new_dependencies(before: str, after: str, requested: set[str]) -> list[str]:
    """The packages installed between two dpkg status files that nobody asked for: what apt marks
    as automatically installed when it pulls them in itself."""
    return sorted(installed_packages(after) - installed_packages(before) - requested)


def mark_automatic(root: Path, base_status: Path, requested: set[str], apt_config: str) -> list[str]:
    """Mark what was installed on top of ``base_status`` as apt would have, but ``requested``:
    mmdebstrap installs a layer with dpkg, which leaves apt's marks alone. ``apt_config`` is
    mmdebstrap's apt configuration, so the host's apt-mark writes ``root``'s marks."""
    if not apt_config:   # without it apt-mark would change this machine's own marks
        raise RuntimeError("marking a layer's packages needs mmdebstrap's apt configuration")
    status = root / "var/lib/dpkg/status"
    packages = new_dependencies(base_status.read_text(), status.read_text(), requested)
    if packages:
        subprocess.run(["env", f"APT_CONFIG={apt_config}", "apt-mark", "auto", *packages],
                       check=True, capture_output=True)
    return packages


def _pem_name(cert: str) -> str:
    """The link name update-ca-certificates gives a certificate in /etc/ssl/certs."""
    base = os.path.basename(cert).removesuffix(".crt")
    return base.replace(" ", "_").replace("(", "=").replace(")", "=").replace(",", "_") + ".pem"


def enabled_certificates(conf: str) -> list[str]:
    """The certificates ``/etc/ca-certificates.conf`` enables (relative to /usr/share/ca-certificates)."""
    return [line for line in (raw.strip() for raw in conf.splitlines())
            if line and not line.startswith(("#", "!"))]


def unpack_certificate_files(root: Path) -> None:
    """The certificate files of the ca-certificates package apt put in ``root``'s archive cache."""
    debs = sorted((root / ARCHIVES).glob("ca-certificates_*_all.deb"))
    if not debs:
        raise FileNotFoundError(f"no ca-certificates package in {root / ARCHIVES}")
    deb = subprocess.run(["dpkg-deb", "--fsys-tarfile", str(debs[-1])], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(root), f"./{CERTS}"], input=deb, check=True, capture_output=True)


def certificates(root: Path) -> int:
    """What ``update-ca-certificates --fresh`` makes in ``root``: a link per enabled certificate,
    the bundle, and OpenSSL's hash links (``openssl rehash`` of copies here, the links made alike
    in ``root``). Returns how many certificates were added."""
    if not (root / CERTS).is_dir():
        unpack_certificate_files(root)
    etc = root / ETC_CERTS
    etc.mkdir(parents=True, exist_ok=True)
    sources = [f"/{CERTS}/{c}" for c in enabled_certificates((root / "etc/ca-certificates.conf").read_text())]
    local = root / LOCAL_CERTS
    sources += sorted(f"/{LOCAL_CERTS}/{p.relative_to(local)}" for p in local.rglob("*.crt")) if local.is_dir() else []
    bundle = bytearray()
    with tempfile.TemporaryDirectory(prefix="armstack-certs-") as tmp:
        added = 0
        for source in sources:
            data = (root / source.lstrip("/")).read_bytes()
            link = etc / _pem_name(source)
            link.unlink(missing_ok=True)
            link.symlink_to(source)
            (Path(tmp) / link.name).write_bytes(data)
            bundle += data if data.endswith(b"\n") else data + b"\n"
            added += 1
        subprocess.run(["openssl", "rehash", tmp], check=True, capture_output=True)
        for made in Path(tmp).iterdir():
            if made.is_symlink():
                target = etc / made.name
                target.unlink(missing_ok=True)
                target.symlink_to(os.readlink(made))
    (etc / BUNDLE).write_bytes(bytes(bundle))
    (etc / BUNDLE).chmod(0o644)
    return added


def bytecode(root: Path) -> None:
    """Byte-compile what the python postinsts would have, with the paths the image has."""
    dirs = [str(root / d) for d in PYTHON_DIRS if (root / d).is_dir()]
    # Timestamp-based, as Debian's (compileall would write hash-based ones under SOURCE_DATE_EPOCH).
    done = subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "timestamp",
                           "-s", str(root), "-p", "/", *dirs], capture_output=True, text=True)
    if done.returncode != 0:   # a module that does not compile is imported from source, as without a .pyc
        print(f"byte-compiling left some modules as source: {done.stdout.strip()[-300:]}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--certificates", action="store_true")
    parser.add_argument("--bytecode", action="store_true")
    parser.add_argument("--mark-automatic", type=Path, metavar="BASE_STATUS",
                        help="mark what was installed since this dpkg status as automatically installed")
    parser.add_argument("--requested", default="", help="comma-separated packages asked for by name")
    parser.add_argument("--apt-config", default="", help="the bootstrap's apt configuration (for --mark-automatic)")
    args = parser.parse_args(argv)
    if args.certificates:
        print(f"{certificates(args.root)} certificates added natively", flush=True)
    if args.bytecode:
        bytecode(args.root)
    if args.mark_automatic:
        marked = mark_automatic(args.root, args.mark_automatic, set(filter(None, args.requested.split(","))),
                                args.apt_config)
        print(f"{len(marked)} packages marked as automatically installed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
