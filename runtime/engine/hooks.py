"""A service's ``post_start`` / ``pre_stop`` hooks, run in its container as docker compose does."""

from __future__ import annotations

from typing import Literal

import docker
import docker.errors

from runtime.compose.model import ServiceHook
from runtime.engine.session import EngineSession
from runtime.errors import EngineError

HookKind = Literal["post_start", "pre_stop"]


class Hooks:
    def __init__(self, session: EngineSession) -> None:
        self.session = session

    def run(self, service: str, container_id: str, which: HookKind) -> None:
        """Run the service's ``post_start`` / ``pre_stop`` hooks in its container, in order.

        As docker compose: each is an exec whose output is shown under the service's name; one
        that exits non-zero fails the start (or stop) with an EngineError and the rest are skipped.
        A container that is already gone or stopped has nothing to run a pre_stop hook in.
        """
        try:
            hooks = getattr(self.session.stack.service(service), which)
        except KeyError:   # an orphan: not in the desired stack
            return
        if hooks and which == "pre_stop" and not self.running(container_id):
            return
        api = self.session.api
        for hook in hooks:
            def run(hook: ServiceHook = hook) -> int:
                exec_id = api.exec_create(
                    container_id, list(hook.command), stdout=True, stderr=True, privileged=hook.privileged,
                    user=hook.user or "", environment=[f"{k}={v}" for k, v in hook.environment] or None,
                    workdir=hook.working_dir,
                )["Id"]
                for chunk in api.exec_start(exec_id, stream=True, demux=True):
                    for stream, data in zip(("stdout", "stderr"), chunk, strict=True):
                        if data and self.session.output is not None:
                            for text in data.decode(errors="replace").splitlines():
                                self.session.show(service, f"{which} hook: {text}", stream=stream)
                return int(api.exec_inspect(exec_id).get("ExitCode") or 0)

            try:
                code = self.session.call(f"run the {which} hook {' '.join(hook.command)!r} of service {service!r}",
                                         run, service)
            except EngineError:
                if which == "pre_stop" and not self.running(container_id):
                    return
                raise
            if code != 0:
                raise EngineError(f"The {which} hook {' '.join(hook.command)!r} of service {service!r} exited with "
                                  f"status {code}; fix the hook's command (it runs in the service's container), "
                                  f"or remove it from '{which}'.", service=service)

    def running(self, container_id: str) -> bool:
        try:
            return bool(self.session.api.inspect_container(container_id)["State"]["Running"])
        except docker.errors.DockerException:
            return False
