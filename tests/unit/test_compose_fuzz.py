"""Fuzzing the compose loader: any input is a stack or a ComposeError, quickly and in bounded memory.

Two sources of input: (a) structured compose documents, services with a broad set of keys whose
values are sometimes right and often the wrong shape; (b) byte-level mutations of the example
stacks' compose files. For every input of at most 64 KB the loader must return a stack or raise
:class:`ComposeError`, within 1 s of CPU time and 100 MB of memory; and whatever it returns must
plan (against an empty engine) and build container parameters without raising.

The default run is short. ``pytest -m full tests/unit/test_compose_fuzz.py`` (part of
``make test-full``) runs 50,000 examples of each.
"""

from __future__ import annotations

import gc
import math
import os
import resource
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.compose import load_text
from runtime.compose.loader import LoadResult
from runtime.containerspec import create_params
from runtime.errors import ComposeError
from runtime.observed import Desired, ObservedImage, ObservedState, Policy
from runtime.planner import plan

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
STACKS = sorted(ROOT.glob("stacks/*/compose.yaml"))
MAX_INPUT = 64 * 1024
MAX_SECONDS = 1.0        # CPU time of one load: other work on the machine does not count
MAX_GROWTH = 100 * 1024 * 1024
# Examples per strategy: the default run (the file runs in < 30 s, the same examples each time)
# and the full one. ARMSTACK_FUZZ_EXAMPLES changes the default run's count (and randomises it).
QUICK = int(os.environ.get("ARMSTACK_FUZZ_EXAMPLES", "100"))
FULL = 50_000


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples, deadline=None,
        derandomize="ARMSTACK_FUZZ_EXAMPLES" not in os.environ and examples != FULL,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


def _max_rss() -> int:
    """Peak resident memory of this process so far, in bytes (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def check(text: str, workdir: Path) -> LoadResult | None:
    """The property: a stack or a ComposeError, in bounded time and memory; a stack runs."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_INPUT:
        return None
    rss_before = _max_rss()
    # The cyclic GC's passes cost in proportion to the whole heap of this process, which
    # Hypothesis grows during a long run (a full port range took 1.45 s with it, 0.14 s
    # without): time the loader's own work. Reference counting still frees as it goes.
    gc.disable()
    started = time.process_time()
    try:
        result: LoadResult | None = load_text(text, source="compose.yaml", workdir=workdir, project="fuzz",
                                              environ={"HOME": "/root", "TAG": "1"})
    except ComposeError as exc:
        assert exc.problems, "a ComposeError must name at least one problem"
        result = None
    finally:
        elapsed = time.process_time() - started
        gc.enable()
    assert elapsed < MAX_SECONDS, f"loading took {elapsed:.2f} s of CPU"
    assert _max_rss() - rss_before < MAX_GROWTH, "loading grew the process by more than 100 MB"
    if result is not None:
        runs(result)
    return result


def runs(result: LoadResult) -> None:
    stack = result.stack
    plan(Desired(stack), ObservedState(), Policy())
    # With every image present the planner goes on to hash each service and create it.
    images = tuple(ObservedImage(id=f"sha256:{i}", tags=(stack.image_ref(s.name) + ":latest",
                                                         stack.image_ref(s.name)))
                   for i, s in enumerate(stack.services))
    plan(Desired(stack, build_hashes=tuple((s.name, "b") for s in stack.services)),
         ObservedState(images=images), Policy())
    for service in stack.services:
        create_params(stack, service.name, "sha256:0", "hash", attached={s.name: "c" for s in stack.services})


# ---- (a) structured documents ------------------------------------------------------------

NAMES = st.sampled_from(["web", "db", "app", "cache", "worker", "1", "a.b", "x-y", "Web", "_bad", ""])
SCALARS = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["${TAG}", "${UNSET:-x}", "${UNSET:?need it}", "$$", "${", "${A:-${B:-${C}}}", "~/x", "./x",
                     "/abs", "..", "80", "8080:80", "1-65535", "0", "-1", "nan", "inf", "1e999", "10s", "1m30s",
                     "512m", "1g", "yes", "no", "on-failure:3", "always", "service:db", "host", "CMD", "\\U0001F600"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.one_of(NAMES, st.text(max_size=8)),
                                                                         inner, max_size=4)),
    max_leaves=12,
)
PORTS = st.one_of(
    st.integers(min_value=-5, max_value=70000),
    st.sampled_from(["80", "8080:80", "127.0.0.1:8080:80/udp", "[::1]:53:53/udp", "9000-9010:9000-9010", "1-65535",
                     "100-50", "80/sctp", "a:b", ":80", "1:2:3:4"]),
    st.fixed_dictionaries({"target": st.one_of(st.integers(0, 70000), SCALARS)},
                          optional={"published": st.one_of(st.integers(0, 70000), SCALARS),
                                    "protocol": st.sampled_from(["tcp", "udp", "sctp"]), "x-note": SCALARS,
                                    "host_ip": SCALARS, "mode": SCALARS, "bogus": SCALARS}),
)
VOLUMES = st.one_of(
    st.sampled_from(["data:/data", "./dir:/dir:ro", "/host:/c:rw", "/anon", "~/x:/x", "data:rel", "a:b:c:d",
                     "undefined:/u", "/h:/c:zz", ""]),
    st.fixed_dictionaries({"type": st.sampled_from(["volume", "bind", "tmpfs", "npipe"]),
                           "target": st.sampled_from(["/t", "rel", ""])},
                          optional={"source": st.sampled_from(["data", "/src", "./src", ""]), "read_only": SCALARS,
                                    "x-note": SCALARS, "bind": VALUES}),
)
SERVICE_KEYS: dict[str, st.SearchStrategy[Any]] = {
    "image": st.one_of(st.sampled_from(["alpine:3.19", "nginx", "  ", "${TAG}"]), SCALARS),
    "build": st.one_of(st.sampled_from([".", "./x", "https://git/x"]),
                       st.fixed_dictionaries({}, optional={"context": SCALARS, "dockerfile": SCALARS,
                                                           "args": VALUES, "target": SCALARS, "x-a": SCALARS})),
    "command": st.one_of(st.text(max_size=40), st.lists(SCALARS, max_size=5), VALUES),
    "entrypoint": st.one_of(st.text(max_size=40), st.lists(SCALARS, max_size=5)),
    "environment": st.one_of(st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), SCALARS, max_size=4),
                             st.lists(st.text(max_size=10), max_size=4), VALUES),
    "env_file": st.one_of(st.sampled_from(["missing.env", "/dev/zero", "/dev/null", ".", "/proc/self/status"]),
                          st.lists(st.one_of(SCALARS, st.fixed_dictionaries({"path": SCALARS,
                                                                             "required": SCALARS})), max_size=3)),
    "ports": st.one_of(st.lists(PORTS, max_size=5), VALUES),
    "volumes": st.one_of(st.lists(VOLUMES, max_size=4), VALUES),
    "volumes_from": st.one_of(st.lists(st.one_of(NAMES, st.sampled_from(["db:ro", "container:x"])), max_size=3),
                              VALUES),
    "depends_on": st.one_of(
        st.lists(NAMES, max_size=3),
        st.dictionaries(NAMES, st.one_of(st.none(), st.fixed_dictionaries(
            {}, optional={"condition": st.sampled_from(["service_healthy", "service_started", "bad"]),
                          "x-why": SCALARS, "restart": SCALARS})), max_size=3),
        VALUES),
    "restart": st.one_of(st.sampled_from(["no", "always", "on-failure", "on-failure:5", "unless-stopped", "x"]),
                         SCALARS),
    "healthcheck": st.one_of(st.fixed_dictionaries({}, optional={
        "test": st.one_of(st.text(max_size=10), st.lists(st.sampled_from(["CMD", "CMD-SHELL", "NONE", "true"]),
                                                         max_size=3), SCALARS),
        "interval": SCALARS, "timeout": SCALARS, "retries": SCALARS, "start_period": SCALARS, "disable": SCALARS,
        "x-note": SCALARS}), VALUES),
    "labels": VALUES,
    "networks": st.one_of(st.lists(st.sampled_from(["default", "front", "missing"]), max_size=3),
                          st.dictionaries(st.sampled_from(["default", "front"]),
                                          st.one_of(st.none(), VALUES), max_size=2), VALUES),
    "network_mode": st.one_of(st.sampled_from(["bridge", "host", "none", "service:db", "service:", "container:x"]),
                              SCALARS),
    "privileged": SCALARS, "devices": VALUES, "cap_add": VALUES, "cap_drop": VALUES, "tmpfs": VALUES,
    "user": SCALARS, "working_dir": SCALARS, "hostname": SCALARS,
    "mem_limit": SCALARS, "cpus": SCALARS, "stop_signal": SCALARS, "stop_grace_period": SCALARS,
    "logging": st.one_of(st.fixed_dictionaries({}, optional={"driver": SCALARS, "options": VALUES,
                                                             "x-note": SCALARS}), VALUES),
    "deploy": st.one_of(st.fixed_dictionaries({}, optional={"resources": st.fixed_dictionaries({}, optional={
        "limits": st.fixed_dictionaries({}, optional={"cpus": SCALARS, "memory": SCALARS, "pids": SCALARS}),
        "reservations": VALUES}), "restart_policy": VALUES, "x-note": SCALARS}), VALUES),
    "container_name": SCALARS, "expose": VALUES, "extra_hosts": VALUES, "x-custom": VALUES, "imagee": VALUES,
}


@st.composite
def services(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(sorted(SERVICE_KEYS)), max_size=8, unique=True))
    service: dict[str, Any] = {"image": "alpine:3.19"} if draw(st.booleans()) else {}
    for key in keys:
        service[key] = draw(SERVICE_KEYS[key])
    return service


DOCUMENTS = st.fixed_dictionaries(
    {"services": st.one_of(st.dictionaries(NAMES, st.one_of(services(), VALUES), max_size=4),
                           st.dictionaries(NAMES, services(), min_size=1, max_size=3), VALUES)},
    optional={
        "version": st.one_of(st.sampled_from(["3.8", "2.4", "1"]), SCALARS),
        "name": st.one_of(st.sampled_from(["demo", "Bad Name!", ""]), SCALARS),
        "volumes": st.one_of(st.dictionaries(st.sampled_from(["data", "x-ext", "other"]), st.one_of(
            st.none(), st.fixed_dictionaries({}, optional={"external": VALUES, "name": SCALARS, "driver": SCALARS,
                                                           "labels": VALUES, "x-a": SCALARS})), max_size=2), VALUES),
        "networks": st.one_of(st.dictionaries(st.sampled_from(["front", "default"]), st.one_of(
            st.none(), st.fixed_dictionaries({}, optional={"external": VALUES, "driver": SCALARS}))), VALUES),
        "x-anchors": VALUES, "secrets": VALUES, "unknown": VALUES,
    },
)


def dump(document: dict[str, Any]) -> str:
    # safe_dump writes NaN and infinities as .nan / .inf, which the loader reads back as floats.
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def _property_structured(document: dict[str, Any]) -> None:
    check(dump(document), STACKS[0].parent)


@_settings(QUICK)
@given(DOCUMENTS)
def test_structured_documents(document: dict[str, Any]) -> None:
    _property_structured(document)


@pytest.mark.full
@_settings(FULL)
@given(DOCUMENTS)
def test_structured_documents_full(document: dict[str, Any]) -> None:
    _property_structured(document)


# ---- (b) byte-level mutations of the example stacks -------------------------------------

TOKENS = [b"*a", b"&a ", b"<<: *a\n", b"${", b"}", b"${X:-", b"$$", b"[", b"]", b"{", b"}", b": ", b"- ", b"\n",
          b"\n  ", b"'", b'"', b"\\", b'"\\U0B01F600"', b"!!binary ", b"!!timestamp 2020-13-45", b"1-65535",
          b"nan", b".inf", b"1e999", b"~", b"null", b"1:", b"'1':", b"x-a: ", b"\t", b"\x00", b"\xff", b"#"]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Path, bytes]:
    path = draw(st.sampled_from(STACKS))
    data = bytearray(path.read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        at = draw(st.integers(min_value=0, max_value=len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "token", "delete", "duplicate", "swap_lines"]))
        if kind == "flip" and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "token":
            data[at:at] = draw(st.sampled_from(TOKENS))
        elif kind == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif kind == "duplicate":
            chunk = data[at:at + draw(st.integers(1, 400))]
            data[at:at] = chunk * draw(st.integers(1, 40))
        elif kind == "swap_lines":
            lines = bytes(data).split(b"\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            data = bytearray(b"\n".join(lines))
    return path, bytes(data[:MAX_INPUT])


def _property_mutated(case: tuple[Path, bytes]) -> None:
    path, data = case
    check(data.decode("utf-8", "replace"), path.parent)


@_settings(QUICK)
@given(mutated())
def test_mutated_example_stacks(case: tuple[Path, bytes]) -> None:
    _property_mutated(case)


@pytest.mark.full
@_settings(FULL)
@given(mutated())
def test_mutated_example_stacks_full(case: tuple[Path, bytes]) -> None:
    _property_mutated(case)


# ---- the harness itself --------------------------------------------------------------------


def test_the_example_stacks_load_and_run() -> None:
    assert STACKS, "no example stacks found"
    for path in STACKS:
        result = check(path.read_text(), path.parent)
        assert result is not None and result.stack.services


@pytest.mark.parametrize("text", ["services: {a: {image: x, cpus: .nan}}", "services: {a: {image: x, cpus: 2}}",
                                  # found by the long run: timed with the GC on, once 1.45 s
                                  "services: {web: {}, db: {cap_drop: null, ports: ['1-65535']}}"])
def test_the_property_holds_on_what_once_crashed(text: str) -> None:
    result = check(text, STACKS[0].parent)
    assert result is None or not math.isnan(result.stack.services[0].cpus or 0)
