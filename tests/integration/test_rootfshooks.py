"""The certificates a bootstrap makes on the host are exactly what Debian's own tool makes.

Differential: Debian's ``update-ca-certificates`` (from the ca-certificates package, run here with
its directory options) against :func:`harness.rootfshooks.certificates`, on the same package
unpacked twice. Needs apt's package lists (to download the package) and openssl on the host.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from hashlib import sha256
from pathlib import Path

import pytest

from harness import rootfshooks

pytestmark = pytest.mark.skipif(not (shutil.which("apt-get") and shutil.which("openssl")),
                                reason="needs apt-get and openssl on the host")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    where = tmp_path_factory.mktemp("deb")
    subprocess.run(["apt-get", "download", "ca-certificates"], cwd=where, check=True, capture_output=True)
    return next(where.glob("ca-certificates_*.deb"))


def _unpacked(package: Path, root: Path) -> Path:
    subprocess.run(["dpkg-deb", "-x", str(package), str(root)], check=True)
    # What the postinst writes on a first install: every certificate the package has, enabled.
    names = sorted(str(p.relative_to(root / rootfshooks.CERTS)) for p in (root / rootfshooks.CERTS).rglob("*.crt"))
    (root / "etc").mkdir(exist_ok=True)
    (root / "etc/ca-certificates.conf").write_text("# enabled\n" + "".join(f"{n}\n" for n in names))
    (root / rootfshooks.ETC_CERTS).mkdir(parents=True, exist_ok=True)
    return root


def _listing(root: Path, prefix: str) -> dict[str, str]:
    """name -> link target (the root's prefix taken off) or the file's content hash."""
    etc = root / rootfshooks.ETC_CERTS
    out = {}
    for p in sorted(etc.iterdir()):
        out[p.name] = os.readlink(p).removeprefix(prefix) if p.is_symlink() else sha256(p.read_bytes()).hexdigest()
    return out


def test_native_certificates_match_update_ca_certificates(package, tmp_path):
    debian, ours = _unpacked(package, tmp_path / "debian"), _unpacked(package, tmp_path / "ours")
    tool = debian / rootfshooks.CERT_TOOL[0].lstrip("/")
    subprocess.run(["sh", str(tool), "--fresh", "--hooksdir", "",
                    "--certsconf", str(debian / "etc/ca-certificates.conf"),
                    "--certsdir", str(debian / rootfshooks.CERTS),
                    "--localcertsdir", str(debian / rootfshooks.LOCAL_CERTS),
                    "--etccertsdir", str(debian / rootfshooks.ETC_CERTS)], check=True, capture_output=True)
    added = rootfshooks.certificates(ours)
    expected = _listing(debian, str(debian))
    assert added > 100 and added == sum(1 for n in expected if n.endswith(".pem"))
    assert _listing(ours, "") == expected
    assert (ours / rootfshooks.ETC_CERTS / rootfshooks.BUNDLE).stat().st_mode & 0o777 == 0o644


def test_held_back_certificate_files_are_taken_from_the_package(package, tmp_path):
    """The bootstrap holds the files back (a dpkg rule) while the package is configured; then they
    come from the package apt left in the archive cache, and the result is the same."""
    debian, ours = _unpacked(package, tmp_path / "debian"), _unpacked(package, tmp_path / "ours")
    shutil.rmtree(ours / rootfshooks.CERTS)
    (ours / rootfshooks.ARCHIVES).mkdir(parents=True)
    shutil.copy(package, ours / rootfshooks.ARCHIVES)
    rootfshooks.certificates(debian)
    rootfshooks.certificates(ours)
    assert _listing(ours, "") == _listing(debian, "")
    assert sorted(p.name for p in (ours / rootfshooks.CERTS / "mozilla").iterdir()) == \
        sorted(p.name for p in (debian / rootfshooks.CERTS / "mozilla").iterdir())
