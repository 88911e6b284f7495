"""The merge rules on parsed trees (runtime.compose.merge), one rule per case."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.compose.merge import MergeIssues, merge_models, merge_service
from runtime.compose.yamlnodes import parse_yaml

pytestmark = pytest.mark.unit


def _service(base: str, over: str) -> tuple[Any, MergeIssues]:
    issues = MergeIssues()
    merged = merge_models(parse_yaml(f"services:\n  s:\n{base}"), parse_yaml(f"services:\n  s:\n{over}"), issues)
    return merged["services"]["s"], issues


@pytest.mark.parametrize(("base", "over", "key", "expected"), [
    ("    logging: {driver: json-file, options: {max-size: 1m}}\n",
     "    logging: {options: {max-file: '3'}}\n", "logging",
     {"driver": "json-file", "options": {"max-size": "1m", "max-file": "3"}}),
    ("    logging: {driver: json-file, options: {max-size: 1m}}\n",
     "    logging: {driver: syslog}\n", "logging", {"driver": "syslog"}),
    ("    healthcheck: {test: [CMD, a, b], interval: 5s}\n", "    healthcheck: {test: [CMD, c]}\n", "healthcheck",
     {"test": ["CMD", "c"], "interval": "5s"}),
    ("    entrypoint: [a, b]\n", "    entrypoint: [c]\n", "entrypoint", ["c"]),
    ("    ulimits: {nofile: {soft: 1, hard: 2}}\n", "    ulimits: {nofile: {soft: 3}}\n", "ulimits",
     {"nofile": {"soft": 3}}),
    ("    networks: [a]\n", "    networks: {b: {aliases: [x]}}\n", "networks", {"a": None, "b": {"aliases": ["x"]}}),
    ("    dns: 8.8.8.8\n", "    dns: [8.8.8.8, 1.1.1.1]\n", "dns", ["8.8.8.8", "1.1.1.1"]),
    ("    extra_hosts: [a=1.1.1.1]\n", "    extra_hosts: [a=1.1.1.1, b=2.2.2.2]\n", "extra_hosts",
     ["a=1.1.1.1", "b=2.2.2.2"]),
    ("    build: ./app\n", "    build: {target: prod}\n", "build", {"context": "./app", "target": "prod"}),
    ("    build: {context: ., args: [A=1, B=2]}\n", "    build: {args: {B: '3'}}\n", "build",
     {"context": ".", "args": {"A": "1", "B": "3"}}),
    ("    devices: [/dev/a:/dev/x]\n", "    devices: [/dev/b:/dev/x, /dev/c]\n", "devices",
     ["/dev/b:/dev/x", "/dev/c"]),
    ("    cap_add: [NET_ADMIN]\n", "    cap_add: [NET_ADMIN, SYS_TIME]\n", "cap_add", ["NET_ADMIN", "SYS_TIME"]),
    ("    volumes: [{type: volume, source: a, target: /d}]\n", "    volumes: ['b:/d']\n", "volumes", ["b:/d"]),
    ("    ports: [{target: 80, published: 8080}]\n", "    ports: [{target: 80, published: 8080}]\n", "ports",
     [{"target": 80, "published": 8080}]),
    ("    user: a\n", "    user:\n", "user", "a"),
])
def test_rule(base: str, over: str, key: str, expected: Any) -> None:
    merged, issues = _service(base, over)
    assert merged[key] == expected
    assert not issues.found


def test_inputs_are_not_changed_and_lines_follow_the_value() -> None:
    base = parse_yaml("services:\n  s:\n    image: a\n    environment: {A: '1'}\n")
    over = parse_yaml("services:\n  s:\n\n\n    environment: {B: '2'}\n")
    merged = merge_models(base, over, MergeIssues())
    assert base["services"]["s"]["environment"] == {"A": "1"}
    env = merged["services"]["s"]["environment"]
    assert (env.line_of("A"), env.line_of("B")) == (4, 5)
    assert merged["services"]["s"].line_of("image") == 3


def test_extends_uses_the_same_rules() -> None:
    base = parse_yaml("image: a\ncommand: [x]\nports: ['80:80']\n")
    over = parse_yaml("command: y\nports: ['81:81']\n")
    merged = merge_service(base, over, MergeIssues())
    assert (merged["image"], merged["command"], merged["ports"]) == ("a", "y", ["80:80", "81:81"])
