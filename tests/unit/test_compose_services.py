"""Each service setting, its accepted forms, and the warnings for ignored ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.compose import Healthcheck, LoadResult, PortSpec, RestartPolicy, ServiceSpec, VolumeMount, load_text
from runtime.compose.model import NetworkAttachment
from runtime.compose.syntax import parse_port, parse_restart, parse_volume, parse_volumes_from


def load(tmp_path: Path, service: str, extra: str = "", environ: dict[str, str] | None = None) -> LoadResult:
    body = "\n".join("    " + line for line in service.strip("\n").splitlines())
    text = f"services:\n  s:\n{body}\n{extra}"
    return load_text(text, workdir=tmp_path, environ=environ or {})


def svc(tmp_path: Path, service: str, extra: str = "", environ: dict[str, str] | None = None) -> ServiceSpec:
    return load(tmp_path, service, extra, environ).stack.service("s")


@pytest.mark.parametrize(
    ("spec", "ports"),
    [
        ("80", [PortSpec(80)]),
        (80, [PortSpec(80)]),
        ("8080:80", [PortSpec(80, 8080)]),
        ("8080:80/udp", [PortSpec(80, 8080, "udp")]),
        ("127.0.0.1:8080:80/udp", [PortSpec(80, 8080, "udp", "127.0.0.1")]),
        ("127.0.0.1::80", [PortSpec(80, None, "tcp", "127.0.0.1")]),
        ("[::1]:8080:80", [PortSpec(80, 8080, "tcp", "::1")]),
        ("9000-9001:9000-9001", [PortSpec(9000, 9000), PortSpec(9001, 9001)]),
        ("9000-9001", [PortSpec(9000), PortSpec(9001)]),
        ("19000-19001:9000-9001/UDP", [PortSpec(9000, 19000, "udp"), PortSpec(9001, 19001, "udp")]),
    ],
)
def test_short_port_syntax(spec: str | int, ports: list[PortSpec]) -> None:
    assert parse_port(spec) == ports


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("70000", "container port 70000 is out of range; expected 1-65535"),
        ("0:80", "published port 0 is out of range"),
        ("http", "'http' is not a container port number"),
        ("80/sctp", "protocol 'sctp' is not supported"),
        ("9001-9000", "runs backwards"),
        ("8000-8010:80", "must be the same length"),
        ("1:2:3:4", "write IPv6 addresses in brackets"),
        ("[::1]8080:80", "expected '[IPv6]:published:target'"),
    ],
)
def test_bad_ports(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_port(spec)


@pytest.mark.parametrize(
    ("spec", "mount"),
    [
        ("data:/data", VolumeMount("volume", "/data", "data")),
        ("data:/data:ro", VolumeMount("volume", "/data", "data", True)),
        ("./rel:/path", VolumeMount("bind", "/path", "/work/proj/rel")),
        ("../up:/path:rw", VolumeMount("bind", "/path", "/work/up")),
        ("/abs:/path:rw", VolumeMount("bind", "/path", "/abs")),
        ("/abs:/path:ro,z", VolumeMount("bind", "/path", "/abs", True)),
        ("~/cfg:/cfg", VolumeMount("bind", "/cfg", "/home/pi/cfg")),
        (".:/src", VolumeMount("bind", "/src", "/work/proj")),
        ("/path", VolumeMount("volume", "/path", None)),
        ("/path:ro", VolumeMount("volume", "/path", None, True)),
    ],
)
def test_short_volume_syntax(spec: str, mount: VolumeMount) -> None:
    assert parse_volume(spec, "/work/proj", "/home/pi") == mount


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("data:rel", "must be absolute"),
        ("a:/b:c:d", "expected 'name:/path'"),
        ("/a:/b:rx", "unknown mode 'rx'"),
        ("", "expected 'name:/path'"),
        ("data::/x", "expected 'name:/path'"),
    ],
)
def test_bad_volumes(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_volume(spec, "/w")


@pytest.mark.parametrize(
    ("value", "policy"),
    [
        (False, RestartPolicy("no")),
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("on-failure", RestartPolicy("on-failure")),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
        ("unless-stopped", RestartPolicy("unless-stopped")),
    ],
)
def test_restart_values(value: Any, policy: RestartPolicy) -> None:
    assert parse_restart(value) == policy


@pytest.mark.parametrize("value", [True, "sometimes", "on-failure:x", "always:3", 3, None])
def test_bad_restart_values(value: Any) -> None:
    with pytest.raises(ValueError, match="expected 'no', 'always', 'on-failure', 'on-failure:N' or 'unless-stopped'"):
        parse_restart(value)


def test_bare_no_in_yaml_means_never_restart(tmp_path: Path) -> None:
    assert svc(tmp_path, "image: x\nrestart: no").restart == RestartPolicy("no")


def test_volumes_from_forms() -> None:
    assert parse_volumes_from("a").read_only is False
    assert parse_volumes_from("a:ro").read_only is True
    assert parse_volumes_from("a:rw").read_only is False
    with pytest.raises(ValueError, match="not supported"):
        parse_volumes_from("container:abc")
    with pytest.raises(ValueError, match="expected 'service'"):
        parse_volumes_from("a:rx")


def test_environment_forms(tmp_path: Path) -> None:
    listed = svc(tmp_path, "image: x\nenvironment:\n  - A=1\n  - B=\n  - C=x=y\n  - FROM_HOST\n  - UNSET_ONE",
                 environ={"FROM_HOST": "h"})
    assert listed.environment == (("A", "1"), ("B", ""), ("C", "x=y"), ("FROM_HOST", "h"))
    mapped = svc(tmp_path, "image: x\nenvironment:\n  A: 1\n  B: 'true'\n  C:\n  D: ''\n  E: 1.5", environ={"C": "c"})
    assert mapped.environment == (("A", "1"), ("B", "true"), ("C", "c"), ("D", ""), ("E", "1.5"))


def test_labels_forms(tmp_path: Path) -> None:
    assert svc(tmp_path, "image: x\nlabels: [a=1, b]").labels == (("a", "1"), ("b", ""))
    assert svc(tmp_path, "image: x\nlabels: {b: 2, a: one}").labels == (("a", "one"), ("b", "2"))


def test_command_forms(tmp_path: Path) -> None:
    assert svc(tmp_path, "image: x\ncommand: [sh, -c, 'a b']").command == ("sh", "-c", "a b")
    assert svc(tmp_path, "image: x\ncommand: sh -c 'a b'").command == ("sh", "-c", "a b")
    assert svc(tmp_path, "image: x\ncommand: [sleep, 10]").command == ("sleep", "10")
    assert svc(tmp_path, "image: x\nentrypoint: []").entrypoint == ()
    assert svc(tmp_path, "image: x").command is None


def test_build_forms(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    build = svc(tmp_path, "build:\n  context: app\n  target: prod\n  args:\n    A: 1\n    B:\n    C:",
                environ={"B": "b"}).build
    assert build is not None
    assert (build.context, build.target, build.args) == (str(tmp_path / "app"), "prod", (("A", "1"), ("B", "b")))
    simple = svc(tmp_path, "build: .").build
    assert simple is not None and simple.context == str(tmp_path) and simple.dockerfile == "Dockerfile"


def test_build_context_that_does_not_exist_is_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "build: ./later")
    [warning] = result.warnings
    assert warning.field == "build" and "does not exist" in warning.message


def test_healthcheck_forms(tmp_path: Path) -> None:
    assert svc(tmp_path, "image: x\nhealthcheck:\n  disable: true").healthcheck == Healthcheck(("NONE",))
    assert svc(tmp_path, "image: x\nhealthcheck:\n  test: [NONE]").healthcheck == Healthcheck(("NONE",))
    hc = svc(tmp_path, "image: x\nhealthcheck:\n  test: [CMD-SHELL, 'true']\n  retries: '2'\n  timeout: 1500ms")
    assert hc.healthcheck == Healthcheck(("CMD-SHELL", "true"), timeout=1.5, retries=2)


def test_healthcheck_without_test_is_ignored_with_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nhealthcheck:\n  interval: 5s")
    assert result.stack.service("s").healthcheck is None
    assert "without 'test'" in result.warnings[0].message


def test_typed_values_accept_interpolated_strings(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\nprivileged: ${PRIV:-false}\ncpus: ${CPUS}\nports: ['${P}']",
            environ={"CPUS": "0.25", "P": "8080:80"})
    assert (s.privileged, s.cpus, s.ports) == (False, 0.25, (PortSpec(80, 8080),))


def test_long_volume_syntax(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\nvolumes:\n  - type: bind\n    source: ./conf\n    target: /conf\n    read_only: true",
            )
    assert s.volumes == (VolumeMount("bind", "/conf", str(tmp_path / "conf"), True),)


def test_networks_and_aliases(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nnetworks:\n  front:\n    aliases: [web, www, web]\n    ipv4_address: 10.5.0.9\n"
                  "    ipv6_address: 'fd00::9'\n    priority: 10\n    link_local_ips: [169.254.8.8]\n  back:",
                  extra="networks:\n  front:\n  back:\n")
    spec = result.stack.service("s")
    assert spec.networks == ("front", "back")
    assert spec.network_settings == (NetworkAttachment("front", ("web", "www"), "10.5.0.9", "fd00::9", 10),)
    [warning] = result.warnings
    assert (warning.field, warning.line) == ("networks.front", 10) and "'link_local_ips' is not supported" in \
        warning.message
    assert [n.name for n in result.stack.networks] == ["front", "back"]


def test_explicit_default_network(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nnetworks: [default]")
    assert [n.name for n in result.stack.networks] == ["default"]


def test_declared_default_network_is_used_as_declared(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x", extra="networks:\n  default:\n    external: true\n    name: lan\n")
    assert result.stack.network_name("default") == "lan"
    assert len(result.stack.networks) == 1


def test_top_level_resources(tmp_path: Path) -> None:
    extra = (
        "volumes:\n  a:\n  b:\n    external: {name: real_b}\n  c:\n    driver: local\n    labels: [k=v]\n"
        "  d:\n    external: 'yes'\n"
    )
    result = load(tmp_path, "image: x", extra=extra)
    volumes = {v.name: v for v in result.stack.volumes}
    assert volumes["a"].external is False
    assert (volumes["b"].external, volumes["b"].external_name) == (True, "real_b")
    assert (volumes["c"].driver, volumes["c"].labels) == ("local", (("k", "v"),))
    assert volumes["d"].external is True and result.stack.volume_name("d") == "d"
    assert result.stack.volume_name("a") == f"{tmp_path.name.lower()}_a"


def test_logging_and_sizes(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\nmem_limit: 1g\nlogging:\n  driver: local\n  options: {max-size: 1m}")
    assert s.mem_limit == 1024**3
    assert s.logging is not None and s.logging.driver == "local" and s.logging.options == (("max-size", "1m"),)


def test_service_mem_limit_wins_over_deploy_limits(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\ndeploy:\n  resources:\n    limits: {memory: 1g}\nmem_limit: 1m")
    assert s.mem_limit == 1024**2


@pytest.mark.parametrize(
    ("line", "field", "text"),
    [
        ("container_name: fixed", "container_name", "the runtime names containers itself"),
        ("imgae: typo", "imgae", "did you mean 'image'?"),
        ("links: [db]", "links", "use depends_on for start order"),
        ("platform: linux/arm64", "platform", "is not supported by armstack and is ignored"),
        ("deploy:\n  replicas: 2", "deploy.replicas", "for swarm"),
    ],
)
def test_ignored_keys_are_warnings(tmp_path: Path, line: str, field: str, text: str) -> None:
    result = load(tmp_path, "image: x\n" + line)
    [warning] = result.warnings
    assert warning.service == "s" and warning.field == field and text in warning.message
    assert warning.line is not None and warning.line >= 4


def test_unknown_top_level_keys_and_undefined_variables_are_warnings(tmp_path: Path) -> None:
    result = load_text("services:\n  a:\n    image: x:${TAG}\n    labels: [v=$TAG]\nsecrets: {}\nwhat: 1\n",
                       workdir=tmp_path, environ={})
    messages = [(w.field, w.line, w.message) for w in result.warnings]
    assert messages == [
        ("image", 3, "the variable TAG is not set; using an empty string"),
        ("secrets", 5, "top-level 'secrets' is not supported by armstack and is ignored"),
        ("what", 6, "unknown top-level key 'what' is ignored"),
    ]
    assert result.stack.service("a").image == "x:"


def test_yaml_booleans_in_environment_are_passed_as_words_with_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nenvironment:\n  DEBUG: yes\n  QUOTED: 'yes'")
    assert result.stack.service("s").environment == (("DEBUG", "true"), ("QUOTED", "yes"))
    [warning] = result.warnings
    assert (warning.field, warning.line) == ("environment.DEBUG", 5) and "quote it" in warning.message
