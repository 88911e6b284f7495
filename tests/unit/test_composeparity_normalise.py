"""The normalisation of the compose parity test: what it folds together and what it keeps apart."""

from __future__ import annotations

from tests.integration.composeparity import (
    Names,
    diff,
    fields,
    logical_names,
    mount_specs,
    normalise_container,
    normalise_network,
)


def _container(project: str, **host: object) -> dict[str, object]:
    cid = "ab" * 32
    return {
        "Id": cid, "Name": f"/{project}-web-1", "Image": "sha256:1",
        "Config": {"Hostname": cid[:12], "Image": "web:1", "Env": ["PATH=/bin", "A=1"],
                   "Labels": {"io.armstack.stack": project, "com.docker.compose.project": project,
                              "com.docker.compose.version": "1.29.2"}},
        "HostConfig": {"RestartPolicy": {"Name": "always"},
                       "LogConfig": {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}, **host},
        "NetworkSettings": {"Networks": {f"{project}_default": {"Aliases": ["web", cid[:12]], "IPAddress": "10.0.0.2",
                                                                "MacAddress": "02:42:0a:00:00:02"}}},
        "Mounts": [],
    }


def test_the_same_mounts_asked_for_in_different_forms_compare_equal() -> None:
    binds = mount_specs({"Volumes": {"/data": {}, "/anon": {}}},
                        {"Binds": ["/srv:/data:ro,rslave", "p_db:/db:rw,nocopy"],
                         "Tmpfs": {"/t": "size=64m,mode=1777"}})
    mounts = mount_specs({}, {"Mounts": [
        {"Type": "bind", "Source": "/srv", "Target": "/data", "ReadOnly": True,
         "BindOptions": {"Propagation": "rslave"}},
        {"Type": "volume", "Source": "p_db", "Target": "/db", "VolumeOptions": {"NoCopy": True}},
        {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 64 * 1024 ** 2, "Mode": 0o1777}},
        {"Type": "volume", "Target": "/anon"},
    ]})
    assert binds == mounts
    assert mount_specs({}, {"Binds": ["/srv:/data"]}) != mount_specs({}, {"Binds": ["/srv:/data:ro"]})


def test_two_projects_normalise_alike_and_by_design_fields_are_dropped() -> None:
    one = normalise_container(_container("pcx"), ["PATH=/bin"], Names("pcx", networks={"pcx_default": "default"}))
    two = normalise_container(_container("prx"), ["PATH=/bin"], Names("prx", networks={"prx_default": "default"}))
    assert one == two
    assert "RestartPolicy" not in one["HostConfig"]
    assert one["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert one["Config"]["Labels"] == {"com.docker.compose.project": "<project>"}
    assert one["Config"]["Env"] == ["A=1"]
    assert one["Networks"] == {"default": {"Aliases": ["web"]}}


def test_a_real_difference_is_reported_by_field() -> None:
    base = normalise_container(_container("pq7"), [], Names("pq7"))
    changed = normalise_container(_container("pq7", Dns=["1.1.1.1"], Init=True), [], Names("pq7"))
    assert fields(diff(base, changed)) == ["HostConfig.Dns", "HostConfig.Init"]
    assert diff(base, changed)[0] == "HostConfig.Dns: compose=<unset> runtime=['1.1.1.1']"


def test_networks_compare_declared_ipam_only_and_map_custom_names() -> None:
    attrs = {"Name": "pq7-custom", "Driver": "bridge", "Attachable": True,
             "Labels": {"com.docker.compose.network": "pq7-custom"},
             "IPAM": {"Driver": "default", "Config": [{"Subnet": "172.20.0.0/16"}]}}
    declared = {"networks": {"lan": {"name": "${PARITY_ID}-custom"}}}
    names = Names("pq7", networks=logical_names("pq7", "networks", declared))
    out = normalise_network(attrs, names, declared["networks"]["lan"])
    assert out["IPAM"]["Config"] == "<engine-assigned>"
    assert "Attachable" not in out
    assert out["Labels"]["com.docker.compose.network"] == "lan"
    fixed = normalise_network(attrs, names, {"ipam": {"config": [{"subnet": "172.20.0.0/16"}]}, "attachable": True})
    assert fixed["IPAM"]["Config"] == [{"Subnet": "172.20.0.0/16"}]
    assert fixed["Attachable"] is True
