"""pytest plugin: emulated ARM devices as fixtures.

Options ``--arch`` (a comma list runs each device test once per arch), ``--device-disk``,
``--keep-devices``, ``--docker-host``; fixtures ``arm_device``, ``arm_device_module``
(harness.scopes) and ``device_factory``; marker ``@pytest.mark.device(arch=..., disk=...,
scope=..., build_cache=...)``. When a test fails, the runtime log, the engine
log, ``docker ps -a`` of the device and an inspect of each service are saved under a report
folder that the failure output names. Leftovers of crashed sessions are swept at start; this
session's objects are swept at its end, also after Ctrl-C.

Installed as a ``pytest11`` entry point, this module is loaded by every pytest run on the
machine, device tests or not, and also where only the runtime (``pip install armstack``, no
``[harness]`` extra) is installed: it imports nothing heavy (docker, testcontainers, the
device kit) and changes no environment variable at import. Those come with the first fixture
that needs them.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.arch import Arch, get_arch, parse_arches
from harness.errors import SetupError
from harness.scopes import _armstack_module_devices, arm_device_module, marker_scope  # noqa: F401 (fixtures)
from harness.settings import HarnessSettings

if TYPE_CHECKING:
    from harness.protocol import Device

DEVICES_KEY = pytest.StashKey[list["Device"]]()
SETTINGS_KEY = pytest.StashKey[HarnessSettings]()
ARCHES_KEY = pytest.StashKey[list[Arch]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("armstack", "emulated ARM devices")
    group.addoption("--arch", default=None,
                    help="device architecture(s), comma separated: arm64, armv7, amd64 "
                         "(default: $ARMSTACK_ARCH, else arm64)")
    group.addoption("--device-disk", default="2G", help="SD card size of each device (default 2G)")
    group.addoption("--keep-devices", action="store_true", help="leave devices (containers, volumes) after tests")
    group.addoption("--docker-host", default=None,
                    help="a real board's engine (ssh://user@board, tcp://board:2375): device tests run on it, "
                         "with no emulation")
    group.addoption("--armstack-reports", default="reports/armstack",
                    help="folder for the artefacts of failed device tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "device(arch=None, disk=None, scope='function', build_cache=True): device "
                                       "settings for this test; scope='module' shares one device, reset between "
                                       "tests; build_cache=False builds stacks from nothing")
    config.stash[SETTINGS_KEY] = HarnessSettings.from_config(config)   # options and environment, once
    config.stash[ARCHES_KEY] = arches_of(config.stash[SETTINGS_KEY].arch)


def arches_of(text: str) -> list[Arch]:
    """``--arch`` (or ``$ARMSTACK_ARCH``) as ``Arch`` objects; a usage error, before any test is
    collected, when it names an unknown arch or none."""
    try:
        arches = parse_arches(text)
    except SetupError as e:
        raise pytest.UsageError(f"--arch {text}: {e}") from None
    if not arches:
        raise pytest.UsageError(f"--arch {text!r} names no architecture; give e.g. --arch arm64,armv7")
    return arches


def settings_of(config: pytest.Config) -> HarnessSettings:
    """The session's harness settings (built at configure time)."""
    if SETTINGS_KEY not in config.stash:
        config.stash[SETTINGS_KEY] = HarnessSettings.from_config(config)
    return config.stash[SETTINGS_KEY]


def _arches(config: pytest.Config) -> list[Arch]:
    """``--arch``, parsed once per session into ``Arch`` objects that fixtures pass on as they are."""
    if ARCHES_KEY not in config.stash:
        config.stash[ARCHES_KEY] = arches_of(settings_of(config).arch)
    return config.stash[ARCHES_KEY]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "arm_device" not in metafunc.fixturenames and "device_arch" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("device")
    wanted = marker.kwargs.get("arch") if marker else None
    arches = _arches(metafunc.config)
    if wanted:
        allowed = [get_arch(w) for w in ([wanted] if isinstance(wanted, str | Arch) else wanted)]
        arches = [a for a in arches if a.name in {w.name for w in allowed}] or allowed[:1]
    metafunc.parametrize("device_arch", arches, ids=[a.name for a in arches], scope="function")


def _host_client() -> Any:
    import docker

    return docker.from_env()


@pytest.fixture(scope="session", autouse=False)
def _armstack_session(request: pytest.FixtureRequest) -> Iterator[None]:
    from harness.device import sweep_card_directories
    from harness.session import sweep

    sweep(_host_client())   # leftovers of sessions whose process is gone
    sweep_card_directories()
    yield


@pytest.fixture
def device_factory(request: pytest.FixtureRequest, _armstack_session: None) -> Iterator[Callable[..., Device]]:
    """Start devices with any arguments; all of them are removed after the test."""
    devices = request.node.stash.setdefault(DEVICES_KEY, [])
    keep = bool(request.config.getoption("--keep-devices"))
    default_disk = str(request.config.getoption("--device-disk"))

    board = settings_of(request.config).docker_host

    def create(arch: str | Arch = "arm64", disk: str | None = None, name: str | None = None,
               from_snapshot: str | None = None, **kwargs: Any) -> Device:
        if from_snapshot is not None:
            kwargs["snapshot"] = from_snapshot   # a card snapshot (harness.snapshots)
        if board:   # a real board: its own arch and disk, whatever the test would emulate
            from harness.board import BoardDevice

            device: Device = BoardDevice(str(board), name=name, keep=keep)
        else:
            from harness.device import EmulatedDevice

            device = EmulatedDevice(arch=arch, disk=disk or default_disk, name=name, keep=keep, **kwargs)
        devices.append(device)
        return device.start()

    yield create
    if not keep:
        for device in reversed(devices):
            device.stop()


@pytest.fixture
def device_arch(request: pytest.FixtureRequest) -> Arch:
    """The ``Arch`` of this run of a device test (``str()`` of it is its name)."""
    return getattr(request, "param", None) or _arches(request.config)[0]


@pytest.fixture
def arm_device(request: pytest.FixtureRequest, device_arch: Arch,
               device_factory: Callable[..., Device]) -> Device:
    """A started emulated device of the selected arch: a new one per test, or with
    ``@pytest.mark.device(scope="module")`` the module's shared one, reset (``arm_device_module``)."""
    marker = request.node.get_closest_marker("device")
    if marker_scope(marker) == "module" and not settings_of(request.config).docker_host:
        return request.getfixturevalue("arm_device_module")
    disk = marker.kwargs.get("disk") if marker else None
    extra = {"build_cache": bool(marker.kwargs["build_cache"])} if marker and "build_cache" in marker.kwargs else {}
    return device_factory(arch=device_arch, disk=disk, **extra)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport,
                                                                                            pytest.TestReport]:
    report = yield
    devices = item.stash.get(DEVICES_KEY, [])
    if report.failed and report.when in ("setup", "call") and devices:
        folder = Path(str(item.config.getoption("--armstack-reports"))) / re.sub(r"[^\w.-]+", "_", item.nodeid)
        saved = [save_artifacts(d, folder / d.name) for d in devices]
        report.sections.append(("armstack artifacts", "device artefacts saved under:\n" +
                                "\n".join(f"  {p.resolve()}" for p in saved)))
    return report


def save_artifacts(device: Device, folder: Path) -> Path:
    """Write what a failing test needs to be understood: logs, container list, inspects, status."""
    folder.mkdir(parents=True, exist_ok=True)

    def attempt(name: str, produce: Callable[[], str]) -> None:
        try:
            text = produce()
        except Exception as e:  # a broken device is exactly when this runs: record, go on
            text = f"could not collect {name}: {e}\n"
        (folder / name).write_text(text)

    attempt("runtime.log", lambda: "\n".join(device.logs()) + "\n")
    attempt("engine.log", lambda: device.engine_container().logs().decode(errors="replace"))
    attempt("status.json", lambda: json.dumps(device.status(), indent=2))
    attempt("disk.txt", lambda: device.shell("df -h /var/lib/docker; ls -la /data", check=False).output)

    def ps() -> str:
        containers = device.engine.containers.list(all=True)
        rows = [f"{c.short_id}  {c.name:40} {c.status:10} {c.image.tags}" for c in containers]
        return "\n".join(rows) + "\n"

    attempt("docker-ps-a.txt", ps)

    def inspects() -> str:
        return json.dumps([c.attrs for c in device.engine.containers.list(all=True)], indent=2)

    attempt("inspect.json", inspects)
    return folder


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove everything this session made, also after a failure or Ctrl-C."""
    # Kept on purpose, or the kit never ran in this process (everything that creates an object
    # imports harness.session): nothing of this session to sweep, and no engine to bother.
    if session.config.getoption("--keep-devices") or "harness.session" not in sys.modules:
        return
    try:
        from harness.device import sweep_card_directories
        from harness.session import SESSION_ID, sweep

        sweep(_host_client(), everything_of_session=SESSION_ID)
        sweep_card_directories(mine=True)
    except Exception:
        pass  # no engine at all: nothing of ours can be left
