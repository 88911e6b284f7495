"""Checks that need the whole file: references between services, volumes and networks, and
start-order cycles.

Four things make a service wait for another: ``depends_on``, ``volumes_from`` (the volumes
must exist), ``network_mode: service:X`` (the network stack must exist) and ``ipc``/``pid``
``service:X`` (the namespace must exist: its container must run). A cycle through any
mix of them means no start order exists, so each cycle is reported once, by its path.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence

from runtime.compose.report import Ref, Report

_SERVICE_KINDS = ("depends_on", "volumes_from", "network_mode", "namespace")


def check_references(
    report: Report, services: Sequence[str], volumes: Iterable[str], networks: Iterable[str],
    secrets: Iterable[str] = (), configs: Iterable[str] = (),
) -> bool:
    """Report references to undefined things; return whether the implicit ``default`` network is used."""
    known_files = {"secret": set(secrets), "config": set(configs)}
    known_services = set(services)
    known_volumes = set(volumes)
    known_networks = set(networks)
    uses_default = False
    listing = ", ".join(services) or "none"
    names_taken: dict[str, str] = {}
    for ref in report.refs:
        if ref.kind == "container_name":
            # Two containers cannot share a name: the second create would fail on the device.
            if ref.target in names_taken:
                report.error(f"the container name '{ref.target}' is already the container_name of service "
                             f"'{names_taken[ref.target]}'; give each service its own", service=ref.service,
                             field=ref.field, line=ref.line)
            else:
                names_taken[ref.target] = ref.service
        elif ref.kind in _SERVICE_KINDS:
            if ref.target not in known_services:
                what = {"depends_on": "depends on", "volumes_from": "takes volumes from",
                        "network_mode": "shares the network of",
                        "namespace": f"shares the {ref.field} namespace of"}[ref.kind]
                report.error(f"{what} the unknown service '{ref.target}'; the services are: {listing}",
                             service=ref.service, field=ref.field, line=ref.line)
        elif ref.kind in ("secret", "config"):
            if ref.target not in known_files[ref.kind]:
                report.error(f"the {ref.kind} '{ref.target}' is not declared; add it under the top-level "
                             f"'{ref.kind}s:' with a file, environment or content source",
                             service=ref.service, field=ref.field, line=ref.line)
        elif ref.kind == "volume":
            if ref.target not in known_volumes:
                report.error(
                    f"the named volume '{ref.target}' is not declared; add it under the top-level 'volumes:' "
                    f"(or write './{ref.target}' for a directory beside the compose file)",
                    service=ref.service, field=ref.field, line=ref.line)
        elif ref.target not in known_networks:
            if ref.target == "default":
                uses_default = True
            else:
                report.error(f"the network '{ref.target}' is not declared; add it under the top-level "
                             "'networks:'", service=ref.service, field=ref.field, line=ref.line)
    return uses_default


def check_cycles(report: Report, services: Sequence[str]) -> None:
    """Report every start-order cycle as ``a -> b -> a``."""
    order = {name: i for i, name in enumerate(services)}
    edges: dict[str, list[Ref]] = {name: [] for name in services}
    for ref in report.refs:
        if ref.kind in _SERVICE_KINDS and ref.service in edges and ref.target in order:
            edges[ref.service].append(ref)
    for component in _components(services, edges):
        start = min(component, key=order.__getitem__)
        path = _cycle_through(start, component, edges)
        if path is None:
            continue
        first = path[0]
        names = [first.service, *(ref.target for ref in path)]
        how = ", ".join(dict.fromkeys(f"{ref.service} {ref.field} {ref.target}" for ref in path))
        report.error(
            f"dependency cycle: {' -> '.join(names)} ({how}); no service can start first. Remove one of "
            "these links", service=first.service, field=first.field, line=first.line)


def _cycle_through(start: str, component: set[str], edges: dict[str, list[Ref]]) -> list[Ref] | None:
    """The shortest list of edges leading from ``start`` back to it inside ``component``."""
    came_from: dict[str, Ref] = {}
    queue = deque([start])
    seen = {start}
    while queue:
        node = queue.popleft()
        for ref in edges[node]:
            if ref.target == start:
                path = [ref]
                while path[0].service != start:
                    path.insert(0, came_from[path[0].service])
                return path
            if ref.target in component and ref.target not in seen:
                seen.add(ref.target)
                came_from[ref.target] = ref
                queue.append(ref.target)
    return None


def _components(services: Sequence[str], edges: dict[str, list[Ref]]) -> list[set[str]]:
    """Strongly connected components that contain a cycle (Tarjan, iterative: files can be big)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    counter = 0
    for root in services:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, pos = work.pop()
            if pos == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            targets = [ref.target for ref in edges[node]]
            if pos < len(targets):
                work.append((node, pos + 1))
                nxt = targets[pos]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component: set[str] = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1 or any(ref.target == node for ref in edges[node]):
                    found.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found
