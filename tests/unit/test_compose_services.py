"""Each service setting, its accepted forms, and the warnings for ignored ones."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.compose import Healthcheck, LoadResult, PortSpec, RestartPolicy, ServiceSpec, VolumeMount, load_text
from runtime.compose.model import Dependency, NetworkAttachment, ServiceHook
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
        ("/abs:/path:ro,z", VolumeMount("bind", "/path", "/abs", True, selinux="z")),
        ("/abs:/path:rshared", VolumeMount("bind", "/path", "/abs", propagation="rshared")),
        ("data:/data:nocopy", VolumeMount("volume", "/data", "data", nocopy=True)),
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


def test_service_and_deploy_limits_may_repeat_the_same_value(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\ndeploy:\n  resources:\n    limits: {memory: 1g, pids: 9}\nmem_limit: 1024m\n"
            "pids_limit: 9")
    assert (s.mem_limit, s.pids_limit) == (1024**3, 9)


@pytest.mark.parametrize(
    ("line", "field", "text"),
    [
        ("imgae: typo", "imgae", "did you mean 'image'?"),
        ("pull_policy: always", "pull_policy", "is not supported by armstack and is ignored"),
        ("external_links: [db]", "external_links", "only services of this stack are managed"),
        ("credential_spec: {file: x.json}", "credential_spec", "Windows containers only"),
        ("use_api_socket: true", "use_api_socket", "API socket"),
        ("pre_start: [{command: ls}]", "pre_start", "post_start and pre_stop are run"),
        ("post_start: [{command: ls, tty: true}]", "post_start", "unknown key 'tty' of a hook is ignored"),
        ("provider: {type: model}", "provider", "external provider"),
        ("deploy:\n  replicas: 2", "deploy.replicas", "one container per service"),
        ("deploy:\n  placement: {constraints: []}", "deploy.placement", "for swarm"),
        ("deploy:\n  resources:\n    reservations: {cpus: '1'}", "deploy.resources.reservations.cpus",
         "only limits CPU use"),
        ("ipc: container:other", "ipc", "only services of this stack"),
        ("pid: container:other", "pid", "only services of this stack"),
    ],
)
def test_ignored_keys_are_warnings(tmp_path: Path, line: str, field: str, text: str) -> None:
    result = load(tmp_path, "image: x\n" + line)
    [warning] = result.warnings
    assert warning.service == "s" and warning.field == field and text in warning.message
    assert warning.line is not None and warning.line >= 4


def test_unknown_top_level_keys_and_undefined_variables_are_warnings(tmp_path: Path) -> None:
    result = load_text("services:\n  a:\n    image: x:${TAG}\n    labels: [v=$TAG]\nmodels: {}\nwhat: 1\n",
                       workdir=tmp_path, environ={})
    messages = [(w.field, w.line, w.message) for w in result.warnings]
    assert messages == [
        ("image", 3, "the variable TAG is not set; using an empty string"),
        ("models", 5, "top-level 'models' is not supported by armstack and is ignored"),
        ("what", 6, "unknown top-level key 'what' is ignored"),
    ]
    assert result.stack.service("a").image == "x:"


def test_yaml_booleans_in_environment_are_passed_as_words_with_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nenvironment:\n  DEBUG: yes\n  QUOTED: 'yes'")
    assert result.stack.service("s").environment == (("DEBUG", "true"), ("QUOTED", "yes"))
    [warning] = result.warnings
    assert (warning.field, warning.line) == ("environment.DEBUG", 5) and "quote it" in warning.message


# ---- engine settings compose passes to the container ------------------------------------------


ENGINE_KEYS = """
image: x
container_name: my-app.1
expose: ["3000", "4000-4001/udp", 5000]
extra_hosts: ["db.local:10.0.0.5", "v6=[::1]"]
dns: 1.1.1.1
dns_search: [lan]
dns_opt: [use-vc]
sysctls: {net.core.somaxconn: 1024}
ulimits:
  nofile: {soft: 1024, hard: 2048}
  nproc: 65535
shm_size: 64m
init: true
platform: linux/arm64
read_only: true
security_opt: [no-new-privileges:true]
tty: true
stdin_open: "yes"
pid: host
ipc: shareable
uts: host
userns_mode: host
cgroup: private
group_add: [audio, 44]
pids_limit: 100
cpu_shares: 512
cpu_quota: 50000
cpu_period: 100000
cpu_rt_runtime: 950ms
cpuset: "0,1"
cpu_count: 2
cpu_percent: 50
mem_reservation: 32m
memswap_limit: -1
mem_swappiness: 10
oom_score_adj: -500
oom_kill_disable: true
device_cgroup_rules: ["c 189:* rmw"]
runtime: runc
cgroup_parent: /armstack
storage_opt: {size: 1G}
blkio_config:
  weight: 300
  weight_device: [{path: /dev/sda, weight: 400}]
  device_read_bps: [{path: /dev/sda, rate: 1mb}]
  device_write_iops: [{path: /dev/sda, rate: 30}]
mac_address: 02:42:ac:11:00:02
domainname: example.lan
stop_signal: SIGUSR1
annotations: {com.example.a: "1"}
devices:
  - /dev/ttyUSB0
  - {source: /dev/ttyACM0, target: /dev/modem, permissions: rw}
  - vendor.com/gpu=all
"""


def test_engine_keys_are_read(tmp_path: Path) -> None:
    from runtime.compose.model import BlkioConfig, DeviceRate, Ulimit

    result = load(tmp_path, ENGINE_KEYS)
    assert [(w.field, w.line) for w in result.warnings] == [("cpu_count", 33), ("cpu_percent", 34)]
    assert "only Windows engines act on it" in result.warnings[0].message
    s = result.stack.service("s")
    assert s.container_name == "my-app.1"
    assert s.expose == ("3000/tcp", "4000/udp", "4001/udp", "5000/tcp")
    assert s.extra_hosts == ("db.local:10.0.0.5", "v6:::1")
    assert (s.dns, s.dns_search, s.dns_opt) == (("1.1.1.1",), ("lan",), ("use-vc",))
    assert s.sysctls == (("net.core.somaxconn", "1024"),)
    assert s.ulimits == (Ulimit("nofile", 1024, 2048), Ulimit("nproc", 65535, 65535))
    assert s.shm_size == 64 << 20 and s.init is True and s.platform == "linux/arm64"
    assert s.read_only and s.tty and s.stdin_open and s.oom_kill_disable
    assert s.security_opt == ("no-new-privileges:true",)
    assert (s.pid, s.ipc, s.uts, s.userns_mode, s.cgroup) == ("host", "shareable", "host", "host", "private")
    assert s.group_add == ("audio", "44")
    assert (s.pids_limit, s.cpu_shares, s.cpu_quota, s.cpu_period) == (100, 512, 50000, 100000)
    assert (s.cpu_rt_runtime, s.cpuset, s.cpu_count, s.cpu_percent) == (950_000, "0,1", 2, 50)
    assert (s.mem_reservation, s.memswap_limit, s.mem_swappiness, s.oom_score_adj) == (32 << 20, -1, 10, -500)
    assert s.device_cgroup_rules == ("c 189:* rmw",)
    assert (s.runtime, s.cgroup_parent, s.storage_opt) == ("runc", "/armstack", (("size", "1G"),))
    assert s.blkio_config == BlkioConfig(
        weight=300, weight_device=(DeviceRate("/dev/sda", 400),), device_read_bps=(DeviceRate("/dev/sda", 1 << 20),),
        device_write_iops=(DeviceRate("/dev/sda", 30),))
    assert (s.mac_address, s.domainname, s.stop_signal) == ("02:42:ac:11:00:02", "example.lan", "SIGUSR1")
    assert s.annotations == (("com.example.a", "1"),)
    assert s.devices == ("/dev/ttyUSB0", "/dev/ttyACM0:/dev/modem:rw", "vendor.com/gpu=all")


def test_extra_hosts_as_a_mapping_with_several_addresses(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\nextra_hosts:\n  db: 10.0.0.5\n  both: [10.0.0.6, '::1']")
    assert s.extra_hosts == ("db:10.0.0.5", "both:10.0.0.6", "both:::1")


def test_links_are_aliases_and_imply_a_start_dependency(tmp_path: Path) -> None:
    text = "services:\n  db:\n    image: x\n  cache:\n    image: x\n  app:\n    image: x\n" \
           "    links: [db, 'cache:redis']\n    depends_on:\n      cache: {condition: service_healthy}\n"
    app = load_text(text, workdir=tmp_path, environ={}).stack.service("app")
    assert app.links == (("db", "db"), ("cache", "redis"))
    assert [(d.service, d.condition) for d in app.depends_on] == [
        ("cache", "service_healthy"), ("db", "service_started")]


def test_seccomp_profile_is_sent_as_its_content(tmp_path: Path) -> None:
    (tmp_path / "seccomp.json").write_text('{\n  "defaultAction": "SCMP_ACT_ALLOW"\n}\n')
    s = svc(tmp_path, "image: x\nsecurity_opt: ['seccomp=./seccomp.json', 'seccomp:unconfined', label=disable]")
    assert s.security_opt == ('seccomp={"defaultAction":"SCMP_ACT_ALLOW"}', "seccomp:unconfined", "label=disable")


def test_long_volume_options(tmp_path: Path) -> None:
    s = svc(tmp_path, """
image: x
volumes:
  - {type: bind, source: ./media, target: /media, bind: {propagation: rslave, create_host_path: false, selinux: z}}
  - {type: volume, source: data, target: /data, read_only: true, volume: {nocopy: true, subpath: app/db}}
  - {type: tmpfs, target: /scratch, tmpfs: {size: 64m, mode: "1777"}}
""", "volumes:\n  data: {}\n")
    assert s.volumes == (
        VolumeMount("bind", "/media", str(tmp_path / "media"), propagation="rslave", create_host_path=False,
                    selinux="z"),
        VolumeMount("volume", "/data", "data", True, nocopy=True, subpath="app/db"),
        VolumeMount("tmpfs", "/scratch", tmpfs_size=64 << 20, tmpfs_mode=0o1777),
    )


def test_mount_options_of_another_type_are_ignored_with_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x\nvolumes:\n  - {type: tmpfs, target: /t, bind: {propagation: shared}}")
    [warning] = result.warnings
    assert "'bind' options do not apply to a mount of type 'tmpfs'" in warning.message
    assert result.stack.service("s").volumes == (VolumeMount("tmpfs", "/t"),)


def test_deploy_resources_map_to_the_engine_fields_as_compose_does(tmp_path: Path) -> None:
    from runtime.compose.model import DeviceRequest

    s = svc(tmp_path, """
image: x
mem_reservation: 1m
deploy:
  resources:
    limits: {memory: 1g, cpus: '1.5', pids: 50}
    reservations:
      memory: 256m
      devices: [{driver: nvidia, count: all, capabilities: [gpu]}]
""")
    assert (s.mem_limit, s.cpus, s.pids_limit, s.mem_reservation) == (1 << 30, 1.5, 50, 256 << 20)
    assert s.device_requests == (DeviceRequest(driver="nvidia", count=-1, capabilities=("gpu",)),)


def test_gpus_are_device_requests_with_the_gpu_capability(tmp_path: Path) -> None:
    from runtime.compose.model import DeviceRequest

    assert svc(tmp_path, "image: x\ngpus: all").device_requests == (DeviceRequest(count=-1, capabilities=("gpu",)),)
    s = svc(tmp_path, "image: x\ngpus:\n  - {driver: nvidia, device_ids: ['0'], capabilities: [compute]}")
    assert s.device_requests == (DeviceRequest("nvidia", None, ("0",), ("compute", "gpu")),)


def test_label_files_under_the_labels_of_the_file(tmp_path: Path) -> None:
    (tmp_path / "app.labels").write_text("# owner\nteam=edge\ntier=${TIER}\n")
    s = svc(tmp_path, "image: x\nlabel_file: ./app.labels\nlabels: {team: core}", environ={"TIER": "2"})
    assert s.labels == (("team", "core"), ("tier", "2"))


def test_a_remote_build_context_beside_an_image_is_a_warning(tmp_path: Path) -> None:
    result = load(tmp_path, "image: x:1\nbuild: https://github.com/x/y.git#main")
    [warning] = result.warnings
    assert warning.field == "build" and "is remote and is ignored" in warning.message
    s = result.stack.service("s")
    assert (s.image, s.build) == ("x:1", None)


def test_ipc_and_pid_of_a_service_are_kept_and_make_a_start_dependency(tmp_path: Path) -> None:
    result = load_text("services:\n  shm:\n    image: x\n    ipc: shareable\n"
                       "  app:\n    image: x\n    ipc: service:shm\n    pid: 'service:shm'\n",
                       workdir=tmp_path, environ={})
    assert not result.warnings
    app = result.stack.service("app")
    assert (app.ipc, app.pid) == ("service:shm", "service:shm")
    assert app.joined_services == ("shm",)


def test_lifecycle_hooks_and_attach(tmp_path: Path) -> None:
    s = svc(tmp_path, "image: x\nattach: false\npost_start:\n  - command: ./warm.sh --fast\n    user: root\n"
                      "    privileged: true\n    working_dir: /app\n    environment: [A=1, HOME]\n"
                      "pre_stop:\n  - command: [echo, bye]\n", environ={"HOME": "/root"})
    env = (("A", "1"), ("HOME", "/root"))
    assert s.post_start == (ServiceHook(("./warm.sh", "--fast"), "root", True, "/app", env),)
    assert s.pre_stop == (ServiceHook(("echo", "bye")),)
    assert s.attach is False
    plain = svc(tmp_path, "image: x")
    assert (plain.post_start, plain.pre_stop, plain.attach) == ((), (), True)


def test_depends_on_restart_and_required(tmp_path: Path) -> None:
    text = ("services:\n  db:\n    image: x\n  app:\n    image: x\n    depends_on:\n"
            "      db: {condition: service_started, restart: true, required: false}\n")
    app = load_text(text, workdir=tmp_path, environ={}).stack.service("app")
    assert app.depends_on == (Dependency("db", "service_started", restart=True, required=False),)
