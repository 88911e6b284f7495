"""A built image gets its labels by one commit, not as the engine's LABEL build steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from runtime import labels as L
from runtime.actions import Build
from runtime.compose.model import BuildSpec
from runtime.executor import Executor
from runtime.imagelabels import can_relabel, relabelled_config
from tests.unit.contexts import BASIC, make
from tests.unit.specs import desired, stack, svc

pytestmark = pytest.mark.unit


def test_the_labels_go_over_the_images_own_and_nothing_else_changes() -> None:
    config = {"Cmd": ["python", "app.py"], "Env": ["A=1"], "Labels": {"a": "1", "io.armstack.stack": "old"}}
    out = relabelled_config(config, {"io.armstack.stack": "demo", "b": "2"})
    assert out == {**config, "Labels": {"a": "1", "io.armstack.stack": "demo", "b": "2"}}
    assert config["Labels"] == {"a": "1", "io.armstack.stack": "old"}   # the input is left alone
    assert relabelled_config({"Cmd": ["x"], "Labels": None}, {"b": "2"})["Labels"] == {"b": "2"}


@pytest.mark.parametrize(("config", "ok"), [({"Cmd": ["sh"]}, True), ({"Entrypoint": ["/init"]}, True),
                                            ({"Cmd": None, "Entrypoint": None}, False), ({}, False), (None, False)])
def test_an_image_without_a_command_is_labelled_by_its_build(config: dict[str, Any] | None, ok: bool) -> None:
    assert can_relabel(config) is ok


class EngineAPI:
    """The engine calls of a build, recorded; ``command`` is what the built image runs."""

    def __init__(self, command: list[str] | None) -> None:
        self.command = command
        self.builds: list[dict[str, str]] = []
        self.commits: list[dict[str, Any]] = []
        self.removed: list[str] = []
        self.tagged: list[str] = []

    def build(self, *, fileobj: Any, labels: dict[str, str], **kw: Any) -> Iterator[dict[str, Any]]:
        for _ in fileobj:
            pass
        self.builds.append(dict(labels))
        yield {"stream": "Step 1/2 : FROM base\n"}
        yield {"stream": "Step 2/2 : RUN make\n"}
        yield {"stream": " ---> Using cache\n"}
        for i, key in enumerate(labels, start=3):   # what the engine does with a build's labels
            yield {"stream": f"Step {i}/{2 + len(labels)} : LABEL {key}={labels[key]}\n"}
        yield {"aux": {"ID": f"sha256:built{len(self.builds)}"}}

    def inspect_image(self, image: str) -> dict[str, Any]:
        return {"Config": {"Cmd": self.command, "Labels": {"from": "base"}}}

    def create_container(self, image: str, **kw: Any) -> dict[str, str]:
        return {"Id": "relabel"}

    def commit(self, container: str, **kw: Any) -> dict[str, str]:
        self.commits.append(kw["conf"])
        return {"Id": "sha256:labelled"}

    def remove_container(self, container: str, **kw: Any) -> None:
        assert kw.get("v") is True, "the relabelling container's anonymous volumes must go with it"
        self.removed.append(container)

    def tag(self, image: str, repo: str, tag: str | None = None) -> None:
        self.tagged.append(image)


def _build(tmp_path: Path, command: list[str] | None) -> tuple[Any, EngineAPI]:
    make(tmp_path, BASIC)
    spec = dataclasses.replace(svc("web", build=True),
                               build=BuildSpec(context=str(tmp_path), labels=(("team", "a"),)))
    api = EngineAPI(command)
    ex = Executor(SimpleNamespace(api=api), desired(stack(spec)))  # type: ignore[arg-type,unused-ignore]
    [result] = ex.execute([Build("web", "demo-web", "hash1")])
    assert result.ok, result.message
    return result, api


def test_the_build_carries_no_labels_and_one_commit_adds_them_all(tmp_path: Path) -> None:
    result, api = _build(tmp_path, ["app"])
    assert api.builds == [{}]
    [conf] = api.commits
    assert conf["Cmd"] == ["app"]
    assert conf["Labels"]["from"] == "base" and conf["Labels"]["team"] == "a"
    assert conf["Labels"][L.BUILD_HASH] == "hash1" and conf["Labels"][L.IMAGE_SERVICE] == "web"
    assert api.removed == ["relabel"] and api.tagged == ["sha256:labelled"]
    assert {"sha256:built1", "sha256:labelled"} <= set(result.images)
    assert result.build is not None and (result.build.steps, result.build.cached) == (2, 1)


def test_an_image_without_a_command_is_built_again_with_its_labels(tmp_path: Path) -> None:
    result, api = _build(tmp_path, None)
    assert api.builds[0] == {} and api.builds[1]["team"] == "a" and api.builds[1][L.BUILD_HASH] == "hash1"
    assert api.commits == [] and api.tagged == ["sha256:built2"]
    assert result.build is not None and (result.build.steps, result.build.cached) == (2, 1)   # counted once
