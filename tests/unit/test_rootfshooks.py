"""The bootstrap hooks that do two kinds of maintainer-script work natively: what they run."""

from __future__ import annotations

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


def test_customize_hook_does_the_work_before_removing_the_diversions():
    hook = rootfshooks.customize_hook([CERT_TOOL])
    assert "--certificates" in hook and "--bytecode" not in hook
    assert hook.index("--certificates") < hook.index("dpkg-divert --quiet --local --rename --remove "
                                                      "/usr/sbin/update-ca-certificates")
    both = rootfshooks.customize_hook([CERT_TOOL, *BYTECODE_TOOLS])
    assert "--certificates --bytecode" in both and both.count("--remove") == 3
    assert rootfshooks.customize_hook([]) == "true"


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
