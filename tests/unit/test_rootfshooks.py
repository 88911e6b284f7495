"""The bootstrap hooks that do two kinds of maintainer-script work natively: what they run."""

from __future__ import annotations

import pytest

from harness import rootfshooks
from harness.rootfshooks import BYTECODE_TOOLS, CERT_TOOL


def test_enabled_certificates_are_the_lines_not_commented_or_disabled():
    conf = "# comment\nmozilla/A.crt\n!mozilla/B.crt\n\n  mozilla/C D.crt  \n"
    assert rootfshooks.enabled_certificates(conf) == ["mozilla/A.crt", "mozilla/C D.crt"]


def test_link_names_follow_update_ca_certificates():
    assert rootfshooks._pem_name("/usr/share/ca-certificates/mozilla/Go Daddy (G2), Inc.crt") == \
        "Go_Daddy_=G2=__Inc.pem"


def test_essential_hook_diverts_each_tool_before_putting_its_stub_in_place():
    hook = rootfshooks.essential_hook([CERT_TOOL, *BYTECODE_TOOLS])
    for path, _ in (CERT_TOOL, *BYTECODE_TOOLS):
        divert = f"dpkg-divert --quiet --local --rename --divert {path}.native --add {path}"
        assert divert in hook and hook.index(divert) < hook.index(f'> "$1{path}"')
    assert rootfshooks.essential_hook([]) == "true"


def test_customize_hook_makes_certificates_before_and_byte_code_after_the_real_tools_are_back():
    hook = rootfshooks.customize_hook([CERT_TOOL])
    assert "--certificates" in hook and "--bytecode" not in hook
    assert hook.index("--certificates") < hook.index("dpkg-divert --quiet --local --rename --remove "
                                                      "/usr/sbin/update-ca-certificates")
    both = rootfshooks.customize_hook([CERT_TOOL, *BYTECODE_TOOLS])
    assert both.count("--remove") == 3
    # py_compile.py is compiled too: from the real module, not from its stub.
    assert both.rindex("--remove") < both.index("--bytecode")
    assert rootfshooks.customize_hook([]) == "true"


def test_a_hook_that_runs_after_mmdebstrap_unpacked_the_packages_removes_the_held_certificate_files():
    assert f'rm -rf "$1/{rootfshooks.CERTS}"' in rootfshooks.essential_hook([CERT_TOOL], unpacked=True)
    assert "rm -rf" not in rootfshooks.essential_hook([CERT_TOOL])
    assert "rm -rf" not in rootfshooks.essential_hook(list(BYTECODE_TOOLS), unpacked=True)


STATUS = """Package: libc6
Status: install ok installed
Architecture: arm64
Description: GNU C Library
 Status: not a field

Package: gone
Status: deinstall ok config-files

Package: python3
Status: install ok installed
"""


def test_installed_packages_are_read_from_dpkg_status_stanzas():
    assert rootfshooks.installed_packages(STATUS) == {"libc6", "python3"}
    assert rootfshooks.installed_packages("") == set()


def test_a_layers_new_packages_are_automatic_but_the_requested_ones():
    after = STATUS + "".join(f"\nPackage: {name}\nStatus: install ok installed\n"
                             for name in ("libpython3.11", "openssl"))
    before = "Package: libc6\nStatus: install ok installed\n"
    assert rootfshooks.new_dependencies(before, after, {"python3"}) == ["libpython3.11", "openssl"]


def test_marks_are_set_by_apt_mark_with_the_bootstraps_configuration(tmp_path, monkeypatch):
    (tmp_path / "var/lib/dpkg").mkdir(parents=True)
    (tmp_path / "var/lib/dpkg/status").write_text(STATUS)
    base = tmp_path / "base-status"
    base.write_text("Package: libc6\nStatus: install ok installed\n")
    ran = []
    monkeypatch.setattr(rootfshooks.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    with pytest.raises(RuntimeError, match="apt configuration"):   # never the host's own apt marks
        rootfshooks.mark_automatic(tmp_path, base, set(), "")
    assert ran == []
    assert rootfshooks.mark_automatic(tmp_path, base, set(), "/tmp/apt.conf") == ["python3"]
    assert ran == [["env", "APT_CONFIG=/tmp/apt.conf", "apt-mark", "auto", "python3"]]
    ran.clear()
    assert rootfshooks.mark_automatic(tmp_path, base, {"python3"}, "/tmp/apt.conf") == [] and ran == []
    hook = rootfshooks.layer_customize_hook(base, ["python3", "pip"])
    assert f"--mark-automatic {base}" in hook and '--apt-config "$MMDEBSTRAP_APT_CONFIG"' in hook
    assert "--requested python3,pip" in hook


def test_byte_code_is_made_natively_only_by_the_images_python(monkeypatch):
    monkeypatch.setattr(rootfshooks.shutil, "which", lambda name: None)
    monkeypatch.setattr(rootfshooks.sys, "version_info", (3, 12, 0))
    assert rootfshooks.native_tools() == []
    monkeypatch.setattr(rootfshooks.sys, "version_info", (3, 11, 2))
    assert rootfshooks.native_tools() == list(BYTECODE_TOOLS)
    monkeypatch.setattr(rootfshooks.shutil, "which", lambda name: "/usr/bin/openssl" if name == "openssl" else None)
    assert rootfshooks.native_tools() == list(BYTECODE_TOOLS)   # the package's files need dpkg-deb too
    monkeypatch.setattr(rootfshooks.shutil, "which", lambda name: f"/usr/bin/{name}")
    assert rootfshooks.native_tools() == [CERT_TOOL, *BYTECODE_TOOLS]


def test_certificate_files_are_held_back_only_while_packages_are_configured():
    essential = rootfshooks.essential_hook([CERT_TOOL])
    customize = rootfshooks.customize_hook([CERT_TOOL])
    assert rootfshooks.HOLD_CERTS in essential and rootfshooks.HOLD_CERTS_RULE.strip() in essential
    # Lifted before the certificates are made, so later installs unpack them as usual.
    assert customize.index(f'rm -f "$1{rootfshooks.HOLD_CERTS}"') < customize.index("--certificates")
    assert rootfshooks.HOLD_CERTS not in rootfshooks.essential_hook(list(BYTECODE_TOOLS))
