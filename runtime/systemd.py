"""The systemd unit that runs ``armstack up`` on a board (Raspberry Pi OS, Debian).

systemd restarts the supervisor if it ever dies (``Restart=always``); the supervisor tells
systemd when the stack's first apply finished (``Type=notify``, ``READY=1``) and pings the
watchdog only while the stack is healthy (``WatchdogSec``), so a hung supervisor — or one whose
stack cannot be kept up — is restarted, and a board with a hardware watchdog is reset by it.
Pure: :func:`render_unit` returns the text; ``armstack systemd-unit`` prints it.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

DEFAULT_SOCKET = "unix:///run/armstack/armstack.sock"


@dataclass(frozen=True)
class UnitSettings:
    executable: str                  # absolute path of the armstack script (e.g. in a venv)
    compose_file: str                # absolute path of the stack's compose file or directory
    data_dir: str = "/var/lib/armstack"
    project: str | None = None
    watchdog_seconds: int = 120      # 0: no watchdog
    listen: str | None = DEFAULT_SOCKET
    docker_unit: str = "docker.service"

    def __post_init__(self) -> None:
        for name in ("executable", "compose_file", "data_dir"):
            if not Path(getattr(self, name)).is_absolute():
                raise ValueError(f"{name} must be an absolute path for a systemd unit, not {getattr(self, name)!r}")
        if self.watchdog_seconds < 0:
            raise ValueError(f"watchdog_seconds must not be negative, not {self.watchdog_seconds}")


def render_unit(s: UnitSettings) -> str:
    """The unit file text for ``s`` (install as /etc/systemd/system/armstack.service)."""
    argv = [s.executable, "-f", s.compose_file, "--data-dir", s.data_dir]
    if s.project:
        argv += ["-p", s.project]
    argv.append("up")
    if s.listen:
        argv += ["--listen", s.listen]
    lines = [
        "[Unit]",
        "Description=armstack: supervise the compose stack " + (s.project or Path(s.compose_file).name),
        "Documentation=https://pypi.org/project/armstack/",
        f"Requires={s.docker_unit}",
        f"After={s.docker_unit} network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=notify",
        # Only the supervisor itself may notify (not a stack process that inherits the socket).
        "NotifyAccess=main",
        "ExecStart=" + " ".join(shlex.quote(a) for a in argv),
        "Restart=always",
        "RestartSec=2",
        # A cold first apply builds images on the board: give it time before systemd gives up.
        "TimeoutStartSec=infinity",
        # SIGTERM stops the stack gracefully; each service has its own stop_grace_period.
        "KillMode=mixed",
        "TimeoutStopSec=120",
        "RuntimeDirectory=armstack",
        "RuntimeDirectoryMode=0700",
        "UMask=0077",
    ]
    if s.watchdog_seconds:
        lines.append(f"WatchdogSec={s.watchdog_seconds}")
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)
