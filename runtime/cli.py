"""``armstack``: supervise, apply, inspect and take down a compose stack on a device.

Flags follow ``docker compose`` where they overlap (``-f``, ``-p``, ``down -v``, ``logs -f``).

Exit codes:
    0    ok
    1    apply failed, not every service is running/healthy, or the state is unreadable
    2    invalid compose file, or a usage error
    3    the Docker engine is unreachable
    4    supervisor conflict: another one holds the project, it is unreachable, or it timed out,
         or it did not apply the file handed to it (superseded, or dropped by a restart)
    130  interrupted (Ctrl-C)

``apply`` while a supervisor runs the project: the project's lock is held, so ``apply`` writes
``request-<id>.json`` {"source", "generation": current+1, "id", "reset"} atomically, sends SIGHUP
to the supervisor (the pid file's pid, once checked to hold the lock) and waits for the result
of that request id in the status. A request the supervisor dropped (superseded by a concurrent
apply, or lost in a supervisor restart) exits 4 and says so; it is never reported as applied.
No traceback reaches the user for a runtime or engine error: one sentence on stderr and the
exit code above.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO, cast

import docker
import docker.errors

from runtime.compose.source import SELECTIONS, StackSource
from runtime.errors import (
    EXIT_ENGINE,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    ArmstackError,
    ComposeError,
    EngineUnreachable,
    SupervisorError,
    UsageError,
)
from runtime.exits import RESTART_MODES, describe_restart, with_default_restart
from runtime.settings import RuntimeSettings
from runtime.state import ServiceStatus, StatusDocument

EPILOG = """\
exit codes:
  0    ok
  1    apply failed, not every service is running/healthy, or the state is unreadable
  2    invalid compose file, or a usage error
  3    the Docker engine is unreachable
  4    supervisor conflict: another holds the project, it is unreachable, or it timed out,
       or it did not apply the file handed to it (superseded, or dropped by a restart)
  130  interrupted

environment:
  ARMSTACK_DATA_DIR      state directory (default /data/armstack)
  ARMSTACK_DEFAULT_RESTART  policy for services without restart: (default always)
  ARMSTACK_EXTRA_LABELS  k=v[,k=v] labels added to every object created
  ARMSTACK_RELEASE       release name stamped on containers
  NO_COLOR               disable colours
  ARMSTACK_DISK_HIGH     disk watermark that starts a cleanup (default 85%; or bytes, e.g. 900M)
  ARMSTACK_DISK_LOW      disk watermark a cleanup cleans down to (default 80%)
  ARMSTACK_KEEP_RELEASES earlier releases kept for rollback (default 1)
  ARMSTACK_BUILD_CACHE_BUDGET  build cache kept at boot cleanup (default 256M)
  ARMSTACK_ENGINE_ROOT   where this process sees the engine's data root (for free space)
{selection_variables}
  ARMSTACK_LISTEN        up: serve /healthz, /status, /metrics there (as --listen)
  ARMSTACK_PROBATION     how long a replaced service must stay up before its update is kept
                         (default 60s; 0: off; label io.armstack.probation per service)
  ARMSTACK_ROLLBACK      what a failed probation rolls back: service (its group) or release
""".format(selection_variables="\n".join(f"  {s.variable:22} {s.variable_help}" for s in SELECTIONS))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse exits 2 on usage errors, which is our code too
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


GLOBAL_DEFAULTS: dict[str, Any] = {"files": None, "project_name": None, "data_dir": None,
                                   "log_format": "text", "no_color": False, "default_restart": None,
                                   **{s.field: None for s in SELECTIONS}}


def _global_options(with_file: bool = True, after: str = "") -> argparse.ArgumentParser:
    """Options accepted before or after the command (`armstack -f X up` and `armstack up -f X`).

    Defaults are suppressed here and filled in after parsing, so a value given before the
    command is not overwritten by the subcommand's default. The repeatable options given after
    the command go to their own ``*_after`` attribute (a subcommand's value would replace the
    list given before it), and :func:`parse_args` joins the two.
    """
    g = argparse.ArgumentParser(add_help=False)
    if with_file:
        g.add_argument("-f", "--file", dest="files" + after, action="append", default=argparse.SUPPRESS,
                       metavar="FILE", help="compose file or directory (default: the current directory); repeat "
                                            "to merge override files in order, as docker compose does")
    for s in SELECTIONS:   # --profile: the source's own table names each selection's flag
        g.add_argument(s.flag, dest=s.field + after, action="append", default=argparse.SUPPRESS,
                       metavar=s.metavar, help=s.help)
    g.add_argument("-p", "--project-name", default=argparse.SUPPRESS,
                   help="project name (default: top-level name:, else the directory name)")
    g.add_argument("--data-dir", default=argparse.SUPPRESS,
                   help="state directory (default: $ARMSTACK_DATA_DIR or /data/armstack)")
    g.add_argument("--log-format", choices=("text", "json"), default=argparse.SUPPRESS)
    g.add_argument("--no-color", action="store_true", default=argparse.SUPPRESS, help="never colour output")
    g.add_argument("--default-restart", choices=RESTART_MODES, default=argparse.SUPPRESS,
                   help="policy for services without restart: (default: $ARMSTACK_DEFAULT_RESTART or always; "
                        "'no' is docker compose's own behaviour)")
    return g


def _disk_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("disk (defaults from ARMSTACK_DISK_HIGH, _LOW, ARMSTACK_KEEP_RELEASES, "
                             "ARMSTACK_BUILD_CACHE_BUDGET)")
    g.add_argument("--disk-high", default=None, metavar="LEVEL",
                   help="clean up above this usage: percent (85%%) or used bytes (900M); default 85%%")
    g.add_argument("--disk-low", default=None, metavar="LEVEL", help="clean down to this usage; default 80%%")
    g.add_argument("--keep-releases", default=None, metavar="N",
                   help="earlier releases of each service kept for rollback; default 1")
    g.add_argument("--build-cache-budget", default=None, metavar="BYTES",
                   help="build cache kept by the boot cleanup; default 256M")


def _rollback_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("safe updates (defaults from ARMSTACK_PROBATION, ARMSTACK_ROLLBACK)")
    g.add_argument("--probation", default=None, metavar="DURATION",
                   help="how long a replaced service must stay up (healthy, if it has a healthcheck) before its "
                        "update counts as good, e.g. 60s, 2m; 0: off; label io.armstack.probation per service; "
                        "default 60s")
    g.add_argument("--rollback", default=None, choices=("service", "release"),
                   help="what a failed probation rolls back: the service with the services of the release it "
                        "depends on or that depend on it (default), or the whole release")


def _settings(args: argparse.Namespace) -> RuntimeSettings:
    """The settings ``main`` resolved from the flags and the environment (built here when a
    command function is called directly)."""
    settings = getattr(args, "settings", None)
    if settings is None:
        settings = args.settings = RuntimeSettings.from_args(args)
    return cast(RuntimeSettings, settings)



def build_parser() -> argparse.ArgumentParser:
    common = _global_options()
    p = _Parser(prog="armstack", description="Run and supervise a docker-compose stack on a device.",
                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[common])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, **kw: Any) -> argparse.ArgumentParser:
        # `logs -f` means follow, as in docker compose: there the file option is global only.
        parents = [_global_options(with_file=name != "logs", after="_after")] if name not in HARNESS_COMMANDS else []
        return sub.add_parser(name, parents=parents, **kw)  # type: ignore[arg-type]  # typeshed: _Parser only

    up = command("up", help="supervise the stack in the foreground")
    up.add_argument("--detach-on-exit", action="store_true", help="leave the stack running when stopped")
    up.add_argument("--reconcile-interval", type=float, default=30.0, metavar="SECONDS")
    up.add_argument("--no-restart-unhealthy", action="store_true", help="do not restart unhealthy services")
    up.add_argument("--release", default=None)
    up.add_argument("--listen", default=None, metavar="URL",
                    help="serve /healthz, /status and /metrics on unix:///PATH or tcp://HOST:PORT "
                         "(default: $ARMSTACK_LISTEN, else off)")
    _disk_options(up)
    _rollback_options(up)

    ap = command("apply", help="converge once; exit 0 when every service is running/healthy")
    ap.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    ap.add_argument("--release", default=None)
    ap.add_argument("--reset", action="store_true",
                    help="forget every service's history first (restart counts, backoff, probation, rollback "
                         "memory): as just deployed")
    _disk_options(ap)
    _rollback_options(ap)

    dn = command("down", help="stop and remove the stack's containers and networks")
    dn.add_argument("-v", "--volumes", action="store_true", help="remove named volumes too")
    dn.add_argument("--timeout", type=float, default=60.0, metavar="SECONDS",
                    help="how long to wait for a running supervisor to stop")

    command("validate", help="check the compose file")

    pl = command("plan", help="print the actions apply would take")
    pl.add_argument("--json", action="store_true")

    st = command("status", help="per service: state, restarts, last exit, backoff")
    st.add_argument("--json", action="store_true")

    lg = command("logs", help="show service output")
    lg.add_argument("-f", "--follow", action="store_true")
    lg.add_argument("service", nargs="?", default=None)

    su = command("systemd-unit", help="print a systemd unit that runs `armstack up` for this stack at boot")
    su.add_argument("--watchdog", type=int, default=120, metavar="SECONDS",
                    help="restart the supervisor when it has not reported a healthy stack for this long (0: off)")
    su.add_argument("--executable", default=None, help="the armstack script to run (default: this one)")

    pu = command("push", help="ship the stack to a board's stack directory (only changed files), then apply it there")
    pu.add_argument("target", nargs="?", default=None, metavar="ssh://[user@]host[:path]",
                    help="the board over ssh (default path /srv/stack)")
    pu.add_argument("--to", default=None, metavar="DIR", help="a directory on this machine instead (a mounted card)")
    pu.add_argument("--no-apply", action="store_true", help="only ship the release")
    pu.add_argument("--apply-command", default=None, metavar="CMD",
                    help="shell command run in the stack directory on the target once the release is in place "
                         "(default: armstack -f \"$ARMSTACK_STACK_DIR\"/FILE apply)")
    pu.add_argument("--ssh", default="ssh", metavar="CMD", help="the ssh command (e.g. 'ssh -i key'; default ssh)")

    for name, text in (("images", "base and runtime images (needs the harness package)"),
                       ("chaos", "a seeded fault soak on an emulated device (needs the harness package)")):
        command(name, help=text, add_help=False).add_argument("args", nargs=argparse.REMAINDER)
    return p


# -- helpers ------------------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"armstack: {message}", file=sys.stderr)


def _presenter(args: argparse.Namespace, out: TextIO | None = None) -> Any:
    from runtime.logs import LogPresenter

    return LogPresenter(out or sys.stdout, fmt=args.log_format, color=_settings(args).color)


def _client(settings: RuntimeSettings) -> docker.DockerClient:
    try:
        client = docker.from_env()
        client.ping()
        return client
    except (docker.errors.DockerException, OSError) as exc:
        host = settings.engine_address
        raise EngineUnreachable(f"The Docker engine is unreachable at {host} ({exc}); "
                                "start it or set DOCKER_HOST.") from exc


def _source(args: argparse.Namespace) -> StackSource:
    """The one place the options that name a stack become one: the files (``-f``, repeated),
    project (``-p``) and selections (``--profile``...), read with the settings' variables.
    Everything after (loading, the supervisor, an apply request, push, the state) takes this source."""
    source = getattr(args, "source", None)
    if source is None:
        source = args.source = StackSource.of(args.files, args.project_name, env=_settings(args).environ,
                                              **{s.field: getattr(args, s.field) or () for s in SELECTIONS})
    return cast(StackSource, source)


def _load(args: argparse.Namespace) -> Any:
    """The stack as it will run: loaded, warnings printed, restart policies resolved."""
    from runtime.compose.loader import load_source

    result = load_source(_source(args))
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return with_default_restart(result.stack, _settings(args).default_restart)


def _store(args: argparse.Namespace, project: str) -> Any:
    from runtime.state import StateStore

    store = StateStore(_settings(args).data_dir, project)
    store.check_dir()   # nothing in a directory that is not ours is believed or signalled
    return store


# -- commands -----------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    stack = _load(args)
    print(f"{stack.source}: valid (project {stack.project}, {len(stack.services)} service(s))")
    for spec in stack.services:
        if not spec.restart.declared:
            print(f"  {spec.name}: no restart: in the file; supervised as {describe_restart(spec.restart)}")
    return EXIT_OK


def cmd_up(args: argparse.Namespace) -> int:
    from runtime.supervisor import Supervisor

    settings = _settings(args)
    sup = Supervisor(
        _client(settings), _source(args), presenter=_presenter(args),
        reconcile_interval=args.reconcile_interval, restart_unhealthy=not args.no_restart_unhealthy,
        detach_on_exit=args.detach_on_exit, settings=settings,
    )
    return sup.run()


def _print_apply(last: dict[str, Any] | None, as_json: bool) -> int:
    from runtime.report import format_report

    if last is None:
        _err("the apply left no result")
        return EXIT_FAILED
    if as_json:
        print(json.dumps(last, indent=2, sort_keys=True))
    else:
        for line in format_report(last.get("report") or {}):
            print(line)
        if last.get("ok"):
            print(f"generation {last.get('generation')} applied: every service is up")
    if not last.get("ok"):
        _err(f"apply failed: {last.get('error')}")
        return EXIT_FAILED
    return EXIT_OK


def cmd_apply(args: argparse.Namespace) -> int:
    from runtime.compose.loader import find_compose_file
    from runtime.control import ApplyRequest, hand_off, is_locked, next_generation, running_supervisor
    from runtime.state import atomic_write_json
    from runtime.supervisor import Supervisor

    stack = _load(args)
    store = _store(args, stack.project)
    pid = running_supervisor(store.lock_path, store.pid_path)
    if pid is not None:
        src = dataclasses.replace(_source(args), project=stack.project)
        req = ApplyRequest(src.pinned([str(Path(find_compose_file(f)).resolve()) for f in src.paths]),
                           next_generation(store.read_status()),
                           reset=args.reset)
        print(f"a supervisor (pid {pid}) runs project {stack.project}: handing it generation {req.generation}",
              file=sys.stderr)
        done = hand_off(req, state_dir=store.dir, pid=pid, read_status=store.read_status,
                        write_json=atomic_write_json, supervisor_running=lambda: is_locked(store.lock_path),
                        timeout=args.timeout)
        return _print_apply(done.get("last_apply"), args.json)
    settings = _settings(args)
    sup = Supervisor(
        _client(settings), dataclasses.replace(_source(args), project=stack.project),
        presenter=_presenter(args, sys.stderr), once=True, apply_timeout=args.timeout, settings=settings,
        forget_history=args.reset,
    )
    code = sup.run()
    if code in (EXIT_OK, EXIT_FAILED) and sup.last_apply is not None:
        return _print_apply(sup.last_apply.to_json(), args.json)
    return code


def cmd_down(args: argparse.Namespace) -> int:
    from runtime.control import is_locked, running_supervisor
    from runtime.desired import make_desired
    from runtime.executor import Executor
    from runtime.planner import plan_down

    stack = _load(args)
    store = _store(args, stack.project)
    # A running supervisor would recreate what we remove: stop it (it stops the stack) first.
    pid = running_supervisor(store.lock_path, store.pid_path)
    if pid is not None:
        print(f"stopping the supervisor of project {stack.project} (pid {pid})", file=sys.stderr)
        # It may exit between the check and the signal: the wait below then sees the lock free.
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while is_locked(store.lock_path):
            if time.monotonic() > deadline:
                raise SupervisorError(f"The supervisor (pid {pid}) did not stop within {args.timeout:g} s.")
            time.sleep(0.2)
    client = _client(_settings(args))
    ex = Executor(client, make_desired(client, stack), output=_presenter(args),
                  extra_labels=_settings(args).extra_labels)
    observed = ex.observe()
    results = ex.execute(plan_down(observed, stack, args.volumes))
    errors = [r.message for r in results if r.message]
    errors += ex.remove_networks()
    for e in errors:
        _err(e)
    removed = sum(1 for r in results if r.ok)
    print(f"project {stack.project}: removed {removed} object(s)")
    return EXIT_FAILED if errors else EXIT_OK


def plan_lines(actions: Sequence[Any]) -> list[str]:
    """One line per action: its kind and fields, e.g. ``Start service=web container_id=1234abcd``."""
    out = []
    for a in actions:
        parts = [type(a).__name__]
        for k, v in vars(a).items():
            if k.endswith("_id") or k in ("config_hash", "build_hash"):
                v = str(v).removeprefix("sha256:")[:12]
            if v not in ("", None):
                parts.append(f"{k}={v}")
        out.append(" ".join(parts))
    return out


def cmd_plan(args: argparse.Namespace) -> int:
    from runtime.desired import make_desired
    from runtime.executor import Executor
    from runtime.observed import Policy
    from runtime.planner import plan

    stack = _load(args)
    client = _client(_settings(args))
    desired = make_desired(client, stack)
    ex = Executor(client, desired)
    actions = plan(desired, ex.observe(), Policy(now=time.monotonic(), applied_at=time.time()))
    if args.json:
        print(json.dumps([{"action": type(a).__name__, **vars(a)} for a in actions], indent=2))
    else:
        for line in plan_lines(actions) or ["nothing to do"]:
            print(line)
    return EXIT_OK


def _observe_status(stack: Any, settings: RuntimeSettings) -> StatusDocument:
    from runtime.desired import make_desired
    from runtime.executor import Executor

    client = _client(settings)
    return observed_status(stack, Executor(client, make_desired(client, stack)).observe())


def observed_status(stack: Any, observed: Any) -> StatusDocument:
    """The status document for a stack no supervisor runs, from what the engine shows."""
    from runtime.report import kept_container, service_state

    services = {}
    for spec in stack.services:
        c = kept_container(observed, spec.name)
        services[spec.name] = ServiceStatus(
            state="missing" if c is None else service_state(c, spec.restart),
            restart=describe_restart(spec.restart), container_id=c.id if c else None, restarts=None,
            last_exit=c.exit_code if c else None, health=c.health if c else None)
    return StatusDocument(project=stack.project, services=services)


def _with_rollbacks(status: StatusDocument, store: Any) -> StatusDocument:
    """``status`` with the rollbacks an earlier `apply` persisted (read only: a damaged state
    file is left for the supervisor to move aside)."""
    import dataclasses

    from runtime.state import PersistedState, read_json

    try:
        state = PersistedState.from_json(read_json(store.state_path, None))
    except ArmstackError:
        return status
    rb = state.rollback
    services = {name: dataclasses.replace(s, rollbacks=rb.totals.get(name, 0)) for name, s in status.services.items()}
    last = rb.last.to_json() if rb.last is not None else None
    return dataclasses.replace(status, services=services, rollback=last)


def _as_document(status: StatusDocument | Mapping[str, Any]) -> StatusDocument:
    return status if isinstance(status, StatusDocument) else StatusDocument.from_json(status)


def status_ok(status: StatusDocument | Mapping[str, Any]) -> bool:
    """Whether every service of a status document is up (running, healthy or a completed job)."""
    return _as_document(status).ok


def status_lines(status: StatusDocument | Mapping[str, Any]) -> list[str]:
    doc = _as_document(status)
    sup = doc.supervisor
    lines = [f"project {doc.project}: " + (
        f"supervised by pid {sup.pid}, generation {doc.generation}" if sup is not None and sup.pid
        else "no supervisor running (observed from the engine)")]
    services = doc.services
    width = max([len("SERVICE"), *(len(n) for n in services)])
    policy_width = max([len("RESTART"), *(len(s.restart or "-") for s in services.values())])
    lines.append(f"{'SERVICE':<{width}}  {'STATE':<11} {'RESTART':<{policy_width}}  {'RESTARTS':>8}  "
                 f"{'LAST EXIT':>9}  BACKOFF")
    for name, s in services.items():
        backoff = ""
        if s.backoff_until:
            backoff = f"{max(0.0, s.backoff_until - time.time()):.1f}s"
        restarts = "-" if s.restarts is None else str(s.restarts)
        last = "-" if s.last_exit is None else str(s.last_exit)
        lines.append(f"{name:<{width}}  {s.state:<11} {s.restart or '-':<{policy_width}}  "
                     f"{restarts:>8}  {last:>9}  {backoff}")
    disk_line = format_disk(dict(doc.disk))
    if disk_line:
        lines.append(disk_line)
    last_apply = doc.last_apply
    if last_apply:
        verdict = "ok" if last_apply.ok else f"FAILED: {last_apply.error}"
        lines.append(f"last apply (generation {last_apply.generation}): {verdict}")
    lines += rollback_lines(doc)
    return lines


def rollback_lines(doc: StatusDocument) -> list[str]:
    """Services on probation, and the last rollback: when, which services and why."""
    lines = []
    probation = sorted(name for name, s in doc.services.items() if s.probation)
    if probation:
        lines.append(f"on probation (new release not proven yet): {', '.join(probation)}")
    last = doc.rollback or {}
    if isinstance(last.get("at"), int | float):
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last["at"]))
        services = ", ".join(last.get("services") or ())
        lines.append(f"last rollback at {when} ({services} back on the previous release): {last.get('reason')}")
    return lines


def format_disk(disk: dict[str, Any]) -> str | None:
    """``disk 72.4% used (1.1 GB of 1.5 GB), watermarks 85%/80%; last cleanup freed 120 MB``."""
    if not disk or disk.get("percent") is None:
        return None
    gb = 1 << 30
    line = (f"disk {disk['percent']:.1f}% used ({disk.get('used', 0) / gb:.2f} GB of "
            f"{((disk.get('used') or 0) + (disk.get('free') or 0)) / gb:.2f} GB), "
            f"watermarks {disk.get('high')}/{disk.get('low')}")
    if disk.get("read_only"):
        line += "; READ-ONLY (the card refuses writes)"
    last = disk.get("last_cleanup") or {}
    if last:
        ago = max(0.0, time.time() - float(last.get("at") or 0))
        line += (f"; last cleanup {ago:.0f}s ago freed {int(last.get('freed_bytes') or 0) >> 20} MB "
                 f"({len(last.get('removed') or [])} removed)")
    for service, why in (disk.get("refused") or {}).items():
        line += f"\n  update of {service} refused: {why}"
    return line


def cmd_status(args: argparse.Namespace) -> int:
    from runtime.control import is_locked

    stack = _load(args)
    store = _store(args, stack.project)
    status = store.read_status_document() if is_locked(store.lock_path) else None
    if status is None:
        status = _with_rollbacks(_observe_status(stack, _settings(args)), store)
    # A service of the file the status does not mention is not known to run.
    unknown = {name: ServiceStatus(state="unknown", restarts=None)
               for name in stack.service_names if name not in status.services}
    status = status.with_services({**status.services, **unknown})
    if args.json:
        print(json.dumps(status.to_json(), indent=2, sort_keys=True))
    else:
        for line in status_lines(status):
            print(line)
    return EXIT_OK if status.ok else EXIT_FAILED


def cmd_logs(args: argparse.Namespace) -> int:
    import queue as _queue

    from runtime.events import ContainerEvent, EventWatcher
    from runtime.executor import Executor
    from runtime.logfollow import LogFollower
    from runtime.observed import Desired

    stack = _load(args)
    if args.service and args.service not in stack.service_names:
        _err(f"no service {args.service!r} in {stack.source}; services: {', '.join(stack.service_names)}")
        return EXIT_USAGE
    client = _client(_settings(args))
    presenter = _presenter(args)
    presenter.add_names(stack.service_names)
    observed = Executor(client, Desired(stack)).observe()
    chosen = [c for c in observed.containers if args.service in (None, c.service)]
    if not args.follow:
        for c in sorted(chosen, key=lambda c: c.service):
            raw = client.api.logs(c.id, stdout=True, stderr=True, stream=False)
            text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
            if text:
                presenter.line(c.service, text)
        return EXIT_OK
    follower = LogFollower(client, presenter)
    q: _queue.Queue[Any] = _queue.Queue()
    watcher = EventWatcher(client, stack.project, q)
    watcher.start()
    try:
        for c in chosen:
            follower.follow(c.service, c.id)
        while True:  # re-attach across restarts, as the supervisor does
            ev = q.get()
            if isinstance(ev, ContainerEvent) and ev.action == "start" and args.service in (None, ev.service):
                follower.follow(ev.service, ev.container_id)
    except KeyboardInterrupt:
        return EXIT_OK
    finally:
        watcher.stop()
        follower.stop_all(timeout=1.0)


def cmd_systemd_unit(args: argparse.Namespace) -> int:
    import shutil

    from runtime.systemd import UnitSettings, render_unit

    stack = _load(args)   # a unit for a file that does not load would fail at every boot
    executable = args.executable or shutil.which("armstack") or str(Path(sys.argv[0]).resolve())
    try:
        settings = UnitSettings(executable=str(Path(executable).resolve()), compose_file=stack.source,
                                data_dir=str(_settings(args).data_dir.resolve()), project=args.project_name,
                                watchdog_seconds=args.watchdog)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    print(render_unit(settings), end="")
    return EXIT_OK


def cmd_push(args: argparse.Namespace) -> int:
    from runtime.push import run

    stack = _load(args)   # a release that does not load is not shipped
    return run(args, stack, _source(args), _settings(args).environ)


# Subcommands the harness package provides; they take everything after their name untouched.
HARNESS_COMMANDS = ("images", "chaos")


def cmd_harness(args: argparse.Namespace) -> int:
    try:
        from harness import cli  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        _err(f"`armstack {args.command}` needs the harness package (pip install 'armstack[harness]'); "
             "it is not installed.")
        return EXIT_USAGE
    run = cli.images_main if args.command == "images" else cli.chaos_main
    return int(run(list(args.args)) or 0)


COMMANDS = {
    "up": cmd_up, "apply": cmd_apply, "down": cmd_down, "validate": cmd_validate, "plan": cmd_plan,
    "status": cmd_status, "logs": cmd_logs, "images": cmd_harness, "chaos": cmd_harness,
    "systemd-unit": cmd_systemd_unit, "push": cmd_push,
}


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ends a command: the error class's own
    (``runtime.errors``); docker-py's errors that escape a command mean the engine is unreachable."""
    if isinstance(exc, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(exc, ArmstackError):
        return exc.exit_code
    if isinstance(exc, docker.errors.DockerException | ConnectionError):
        return EXIT_ENGINE
    return EXIT_FAILED


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    for key, default in GLOBAL_DEFAULTS.items():
        if not hasattr(args, key):
            setattr(args, key, default)
    for key in ("files", *(s.field for s in SELECTIONS)):
        joined = (getattr(args, key) or []) + (getattr(args, key + "_after", None) or [])
        setattr(args, key, joined or None)
    args.file = args.files[0] if args.files else None  # the main file: project directory, .env
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `images` and `chaos` pass everything after them through untouched (their own flags included).
    for name in HARNESS_COMMANDS:
        if name not in argv:
            continue
        i = argv.index(name)
        valued = ("-f", "--file", "-p", "--project-name", "--data-dir", "--log-format", *(s.flag for s in SELECTIONS))
        if all(a.startswith("-") or argv[j - 1] in valued for j, a in enumerate(argv[:i])):
            return cmd_harness(argparse.Namespace(command=name, args=argv[i + 1:]))
    args = parse_args(argv)
    try:
        args.settings = RuntimeSettings.from_args(args)   # the one read of the environment
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except ComposeError as exc:
        for w in exc.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for p in exc.problems:
            print(f"error: {p}", file=sys.stderr)
        _err(f"the compose file is invalid ({len(exc.problems)} error(s)); nothing was changed.")
        return exc.exit_code
    except (ArmstackError, docker.errors.DockerException) as exc:
        _err(str(exc).strip() or type(exc).__name__)
        return exit_code_for(exc)
    except OSError as exc:
        _err(f"{exc.strerror or exc}{': ' + str(exc.filename) if exc.filename else ''}")
        return EXIT_FAILED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
