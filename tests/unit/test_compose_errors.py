"""Every way a compose file can be wrong: each problem names file, service, field and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from runtime.compose import load_text
from runtime.errors import ComposeError, Problem


def problems(text: str, tmp_path: Path | None = None, environ: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(ComposeError) as info:
        load_text(textwrap.dedent(text), source="stack.yml", workdir=tmp_path or "/nonexistent", environ=environ or {})
    assert all(p.file == "stack.yml" for p in info.value.problems)
    return info.value.problems


def one(text: str, **kwargs: object) -> Problem:
    found = problems(text, **kwargs)  # type: ignore[arg-type]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    p = one(text)
    assert "the file is empty" in p.message


@pytest.mark.parametrize("text", ["- a\n- b\n", "just text\n", "42\n"])
def test_top_level_not_a_mapping(text: str) -> None:
    assert "expected a mapping with a 'services:' key at the top level" in one(text).message


def test_invalid_yaml_names_the_line() -> None:
    p = one("services:\n  web:\n    image: [unclosed\n  db: {}\n")
    assert p.line is not None and p.line >= 3 and "not valid YAML" in p.message


def test_duplicate_keys() -> None:
    p = one("services:\n  web:\n    image: a\n    image: b\n")
    assert (p.line, p.message) == (
        4, "the key 'image' is written twice in the same mapping (lines 3 and 4); keep only one")


def test_missing_services() -> None:
    assert "there is no 'services:' key" in one("volumes: {}\n").message


def test_version_1_files_are_refused_with_a_hint() -> None:
    p = one("web:\n  image: nginx\ndb:\n  image: postgres\n")
    assert "version 1" in p.message and "move the services under a top-level 'services:'" in p.message


@pytest.mark.parametrize("value", ["[a, b]", "nginx", "", "null"])
def test_services_not_a_mapping(value: str) -> None:
    p = one(f"services: {value}\n")
    assert (p.field, p.line) == ("services", 1) and "expected a mapping of service names" in p.message


@pytest.mark.parametrize(("value", "found"), [("", "(it is empty)"), ("nginx", "'nginx'"), ("[a]", "a list")])
def test_service_not_a_mapping(value: str, found: str) -> None:
    p = one(f"services:\n  ok:\n    image: x\n  web: {value}\n")
    assert p.service == "web" and "expected a mapping of service settings" in p.message and found in p.message


def test_bad_version_type() -> None:
    p = one("version: [3]\nservices:\n  a:\n    image: x\n")
    assert (p.field, p.line) == ("version", 1)


def test_invalid_service_name() -> None:
    p = one("services:\n  'bad name':\n    image: x\n")
    assert p.line == 2 and "invalid service name" in p.message


def test_unknown_dependency_lists_the_services() -> None:
    p = one("""
        services:
          web:
            image: x
            depends_on: [db]
          cache:
            image: y
        """)
    assert (p.service, p.field, p.line) == ("web", "depends_on", 5)
    assert p.message == "depends on the unknown service 'db'; the services are: web, cache"
    assert str(p) == "stack.yml:5: services.web.depends_on: depends on the unknown service 'db'; the services are: " \
        "web, cache"


def test_unknown_dependency_condition() -> None:
    p = one("services:\n  a:\n    image: x\n    depends_on:\n      b: {condition: service_ready}\n  b:\n    image: x\n")
    assert (p.service, p.field, p.line) == ("a", "depends_on.b", 5) and "service_healthy" in p.message


def test_dependency_cycle_is_named() -> None:
    p = one("""
        services:
          a:
            image: x
            depends_on: [b]
          b:
            image: x
            depends_on:
              a:
                condition: service_started
        """)
    assert (p.service, p.field, p.line) == ("a", "depends_on", 5)
    assert p.message.startswith("dependency cycle: a -> b -> a (a depends_on b, b depends_on a)")


def test_self_dependency_is_a_cycle() -> None:
    p = one("services:\n  a:\n    image: x\n    depends_on: [a]\n")
    assert p.message.startswith("dependency cycle: a -> a")


def test_cycles_through_network_mode_and_volumes_from() -> None:
    found = problems("""
        services:
          a:
            image: x
            network_mode: service:b
          b:
            image: x
            volumes_from: [c]
          c:
            image: x
            depends_on: [a]
          d:
            image: x
            depends_on: [e]
          e:
            image: x
            depends_on: [d]
          ok:
            image: x
            depends_on: [a]
        """)
    assert [p.message.split(" (")[0] for p in found] == [
        "dependency cycle: a -> b -> c -> a",
        "dependency cycle: d -> e -> d",
    ]
    assert "a network_mode b, b volumes_from c, c depends_on a" in found[0].message
    assert (found[0].field, found[0].line) == ("network_mode", 5)


@pytest.mark.parametrize(
    ("ports", "line", "message"),
    [
        ("['70000:80']", 4, "published port 70000 is out of range; expected 1-65535"),
        ("\n      - 80\n      - 0\n", 6, "container port 0 is out of range"),
        ("[{target: 99999}]", 4, "container port 99999 is out of range"),
        ("[{published: 80}]", 4, "expected a 'target'"),
        ("'80:80'", 4, "expected a list of ports such as '8080:80', found '80:80'"),
        ("[[1]]", 4, "expected a port such as"),
    ],
)
def test_bad_ports(ports: str, line: int, message: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    ports: {ports}\n")
    assert (p.service, p.field, p.line) == ("web", "ports", line)
    assert message in p.message


def test_every_bad_port_is_reported() -> None:
    found = problems("services:\n  web:\n    image: x\n    ports:\n      - 1:1\n      - 0:1\n      - 2:2\n      - x\n")
    assert [p.line for p in found] == [6, 8]


@pytest.mark.parametrize(
    ("setting", "field", "message"),
    [
        ("restart: sometimes", "restart", "invalid restart policy 'sometimes': expected 'no', 'always'"),
        ("stop_grace_period: soon", "stop_grace_period", "invalid duration 'soon'"),
        ("healthcheck:\n      test: 'true'\n      interval: 5 seconds", "healthcheck.interval", "invalid duration"),
        ("mem_limit: lots", "mem_limit", "invalid size 'lots': expected a number of bytes"),
        ("cpus: none", "cpus", "expected a number of CPUs"),
        ("privileged: maybe", "privileged", "expected true or false, found 'maybe'"),
        ("environment: 3", "environment", "expected a list of 'KEY=VALUE' strings or a mapping"),
        ("volumes: data:/data", "volumes", "expected a list of volumes such as 'data:/data'"),
        ("cap_add: NET_ADMIN", "cap_add", "expected a list of strings, found 'NET_ADMIN'"),
        ("depends_on: db", "depends_on", "expected a list of service names, or a mapping"),
        ("labels: [{a: 1}]", "labels", "expected each item to be a 'KEY=VALUE' string, found a mapping"),
        ("command: 'unterminated \"quote'", "command", "check the quotes or use a list"),
        ("healthcheck:\n      test: [RUN, x]", "healthcheck.test", "a list starting with 'CMD', 'CMD-SHELL' or"),
        ("network_mode: container:abc", "network_mode", "is not supported"),
        ("network_mode: bridge\n    networks: [default]", "network_mode", "cannot be used together"),
        ("volumes_from: [container:abc]", "volumes_from", "volumes_from a container is not supported"),
        ("user: [1]", "user", "expected a string, found a list"),
        ("tmpfs: [tmp]", "tmpfs", "expected an absolute container path"),
        ("logging: json", "logging", "expected a mapping of logging settings"),
    ],
)
def test_bad_service_settings(setting: str, field: str, message: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {setting}\n")
    assert (p.service, p.field) == ("web", field)
    assert p.line is not None and p.line >= 4
    assert message in p.message


def test_neither_image_nor_build() -> None:
    p = one("services:\n  web:\n    command: [true]\n")
    assert (p.service, p.line) == ("web", 3)
    assert "neither 'image' nor 'build'" in p.message


def test_undefined_named_volume() -> None:
    p = one("services:\n  db:\n    image: x\n    volumes:\n      - ./ok:/ok\n      - pgdata:/data\n")
    assert (p.service, p.field, p.line) == ("db", "volumes", 6)
    assert "the named volume 'pgdata' is not declared" in p.message


def test_volumes_from_unknown_service() -> None:
    p = one("services:\n  web:\n    image: x\n    volumes_from:\n      - ghost:ro\n")
    assert (p.service, p.field, p.line) == ("web", "volumes_from", 5) and "unknown service 'ghost'" in p.message


def test_network_mode_unknown_service() -> None:
    p = one("services:\n  web:\n    image: x\n    network_mode: service:vpn\n")
    assert (p.service, p.field, p.line) == ("web", "network_mode", 4)
    assert "shares the network of the unknown service 'vpn'" in p.message


@pytest.mark.parametrize("key", ["ipc", "pid"])
def test_namespace_of_an_unknown_service(key: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {key}: service:shm\n")
    assert (p.service, p.field, p.line) == ("web", key, 4)
    assert f"shares the {key} namespace of the unknown service 'shm'" in p.message


def test_cycle_through_ipc_and_pid() -> None:
    p = one("services:\n  a:\n    image: x\n    ipc: service:b\n  b:\n    image: x\n    pid: service:a\n")
    assert p.message.startswith("dependency cycle: a -> b -> a (a ipc b, b pid a)")


@pytest.mark.parametrize(
    ("hook", "line", "text"),
    [
        ("post_start: ls", 4, "expected a list of hooks"),
        ("post_start:\n      - user: root", 5, "a hook needs a 'command'"),
        ("pre_stop:\n      - command: \"a 'b\"", 5, "cannot split"),
        ("pre_stop:\n      - command: ls\n        privileged: maybe", 5, "true or false"),
    ],
)
def test_bad_hooks(hook: str, line: int, text: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {hook}\n")
    assert (p.service, p.field, p.line) == ("web", hook.split(":")[0], line) and text in p.message, p


def test_depends_on_restart_must_be_a_boolean() -> None:
    p = one("services:\n  db:\n    image: x\n  web:\n    image: x\n    depends_on:\n      db:\n"
            "        restart: often\n")
    assert (p.service, p.field, p.line) == ("web", "depends_on.db.restart", 8) and "true or false" in p.message


def test_undefined_network() -> None:
    p = one("services:\n  web:\n    image: x\n    networks: [front]\nnetworks:\n  back:\n")
    assert (p.service, p.field, p.line) == ("web", "networks", 4)
    assert "the network 'front' is not declared" in p.message


def test_missing_required_variable() -> None:
    p = one("services:\n  web:\n    image: x\n    environment:\n      TOKEN: ${TOKEN:?set TOKEN to the API token}\n")
    assert (p.service, p.field, p.line) == ("web", "environment.TOKEN", 5)
    assert p.message == "required variable TOKEN is missing a value: set TOKEN to the API token"


def test_malformed_interpolation() -> None:
    p = one("services:\n  web:\n    image: x${oops\n")
    assert (p.service, p.field, p.line) == ("web", "image", 3) and "invalid interpolation format" in p.message


def test_bad_top_level_resources() -> None:
    found = problems("services:\n  a:\n    image: x\nvolumes: [data]\nnetworks:\n  n:\n    external: perhaps\n")
    assert [(p.field, p.line) for p in found] == [("volumes", 4), ("networks.n", 7)]
    assert "expected a mapping of volume names" in found[0].message


def test_all_problems_are_reported_together() -> None:
    found = problems("""
        services:
          web:
            ports: ['99999']
            restart: sometimes
            depends_on: [nobody]
          db:
            image: x
            mem_limit: big
            volumes: [undeclared:/data]
        """)
    assert [(p.service, p.field) for p in found] == [
        ("web", "ports"),
        ("web", "restart"),
        ("web", "image"),
        ("db", "mem_limit"),
        ("web", "depends_on"),
        ("db", "volumes"),
    ]
    assert "has 6 error(s)" in str(ComposeError(found))


@pytest.mark.parametrize(
    ("setting", "field", "line", "expected"),
    [
        ("container_name: -bad", "container_name", 4, "invalid container name '-bad'"),
        ("expose: ['80:80']", "expose", 4, "invalid expose '80:80'"),
        ("expose:\n      - 80\n      - http", "expose", 6, "expected '3000', '3000/udp' or '3000-3005'"),
        ("links: ['a:b:c']", "links", 4, "expected 'service' or 'service:alias'"),
        ("dns: [1.1.1.1, dns.google]", "dns", 4, "invalid DNS server 'dns.google'"),
        ("extra_hosts: [nocolon]", "extra_hosts", 4, "expected 'name:address' or 'name=address'"),
        ("sysctls: [net.core.somaxconn]", "sysctls", 4, "expected 'KEY=VALUE'"),
        ("ulimits:\n      nofile: {soft: 10}", "ulimits.nofile", 5, "expected both 'soft' and 'hard'"),
        ("ulimits:\n      nofile: {soft: 20, hard: 10}", "ulimits.nofile", 5, "above its hard limit 10"),
        ("shm_size: lots", "shm_size", 4, "expected a number of bytes or a size such as '512m'"),
        ("init: maybe", "init", 4, "expected true or false"),
        ("platform: arm64", "platform", 4, "expected 'os/arch' or 'os/arch/variant'"),
        ("security_opt: [apparmor]", "security_opt", 4, "expected 'name=value' or 'name:value'"),
        ("security_opt: ['seccomp=./none.json']", "security_opt", 4, "cannot be read as JSON"),
        ("cgroup: shared", "cgroup", 4, "expected 'host' or 'private'"),
        ("pids_limit: many", "pids_limit", 4, "expected a number of processes (-1: unlimited)"),
        ("cpu_percent: 150", "cpu_percent", 4, "expected a percentage from 0 to 100, found 150"),
        ("mem_swappiness: -1", "mem_swappiness", 4, "from 0 to 100"),
        ("oom_score_adj: 2000", "oom_score_adj", 4, "from -1000 to 1000"),
        ("blkio_config: {weight: 5}", "blkio_config.weight", 4, "expected a weight from 10 to 1000, found 5"),
        ("blkio_config:\n      device_read_bps: [{path: /dev/sda}]", "blkio_config.device_read_bps", 5,
         "expected 'path' and 'rate'"),
        ("mac_address: 02:42", "mac_address", 4, "expected a MAC address such as '02:42:ac:11:00:02'"),
        ("devices: ['dev/ttyUSB0']", "devices", 4, "must be an absolute path"),
        ("devices: ['/dev/a:/dev/b:rwx']", "devices", 4, "must be made of r, w and m"),
        ("devices:\n      - {target: /dev/x}", "devices", 5, "expected a 'source'"),
        ("volumes:\n      - {type: bind, source: /a, target: /b, bind: {propagation: weird}}", "volumes", 5,
         "unknown propagation 'weird'"),
        ("volumes:\n      - {type: volume, target: /b, volume: {subpath: ../up}}", "volumes", 5,
         "expected a relative path inside the volume"),
        ("volumes:\n      - {type: tmpfs, target: /b, tmpfs: {mode: rwx}}", "volumes", 5, "in octal such as 0755"),
        ("deploy:\n      resources:\n        limits: {pids: lots}", "deploy.resources.limits.pids", 6,
         "expected a number of processes"),
        ("deploy:\n      resources:\n        reservations:\n          devices: [{count: 1}]",
         "deploy.resources.reservations.devices", 7, "needs 'capabilities'"),
    ],
)
def test_bad_engine_settings(setting: str, field: str, line: int, expected: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {setting}\n")
    assert (p.service, p.field, p.line) == ("web", field, line), p
    assert expected in p.message, p.message


def test_link_to_an_unknown_service() -> None:
    p = one("services:\n  web:\n    image: x\n    links: [db]\n")
    assert (p.service, p.field, p.line) == ("web", "links", 4) and "unknown service 'db'" in p.message


def test_two_services_with_the_same_container_name() -> None:
    p = one("services:\n  a:\n    image: x\n    container_name: box\n  b:\n    image: x\n    container_name: box\n")
    assert (p.service, p.field, p.line) == ("b", "container_name", 7)
    assert p.message == "the container name 'box' is already the container_name of service 'a'; give each service " \
        "its own"


@pytest.mark.parametrize(
    ("setting", "field", "line", "expected"),
    [
        ("gpus: some", "gpus", 4, "expected 'all' or a list of GPU requests"),
        ("gpus:\n      - {count: lots}", "gpus", 5, "expected a number of devices or 'all'"),
        ("label_file: ./missing.labels", "label_file", 4, "the label file /nonexistent/missing.labels does not exist"),
    ],
)
def test_bad_gpus_and_label_files(setting: str, field: str, line: int, expected: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {setting}\n")
    assert (p.service, p.field, p.line) == ("web", field, line), p
    assert expected in p.message, p.message


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("mem_limit: 1m\n    deploy: {resources: {limits: {memory: 1g}}}", "mem_limit"),
        ("cpus: 1\n    deploy: {resources: {limits: {cpus: '2'}}}", "cpus"),
        ("deploy: {resources: {limits: {pids: 10}}}\n    pids_limit: 20", "pids_limit"),
    ],
)
def test_a_limit_set_twice_to_different_values(setting: str, field: str) -> None:
    p = one(f"services:\n  web:\n    image: x\n    {setting}\n")
    assert (p.service, p.field) == ("web", field)
    assert "are set to different values; they are the same limit, keep one of them" in p.message


def test_a_remote_build_context_without_an_image_to_pull() -> None:
    p = problems("services:\n  web:\n    build:\n      context: https://github.com/x/y.git\n")[0]
    assert (p.service, p.field) == ("web", "build") and "is remote; only local directories are supported" in p.message
