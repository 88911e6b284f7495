"""The stack's clock: the preload shim (harness/assets/clockshim.c, compiled for this host), the
engine's runc wrapper that puts it into a service's container (runc-clock.sh with clock-mounts.jq),
and the offset file both read (harness.procfaults)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from harness import images, procfaults
from runtime import labels

pytestmark = pytest.mark.unit

ASSETS = images.ASSETS
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler on this host")
needs_jq = pytest.mark.skipif(shutil.which("jq") is None, reason="no jq on this host")


def test_the_offset_file_is_fixed_point_and_reads_back() -> None:
    assert procfaults.offset_text(86_400) == "86400.000000"
    assert procfaults.offset_text(-3600.25) == "-3600.250000"
    assert procfaults.offset_text(-0.0) == procfaults.offset_text(1e-9) == "0.000000"   # no "-0", no exponent
    assert procfaults.offset_text(2.5e-5) == "0.000025"
    for seconds in (86_400.0, -3600.25, 0.5, -1e6):
        assert procfaults.parse_offset(procfaults.offset_text(seconds)) == seconds


def test_the_paths_agree_across_the_assets() -> None:
    """One directory, one shim path, one label: the same in the C, jq, shell and Python that use them."""
    wrapper = (ASSETS / "runc-clock.sh").read_text()
    mounts = (ASSETS / "clock-mounts.jq").read_text()
    shim = (ASSETS / "clockshim.c").read_text()
    assert f"\nCLOCK_DIR={procfaults.CLOCK_DIR}\n" in wrapper
    assert f"\nSHIMS={images.SHIM_DIR}\n" in wrapper
    assert f"\nSERVICE_LABEL={labels.SERVICE}\n" in wrapper
    offset_file = re.search(r'#define OFFSET_FILE "([^"]+)"', shim)
    assert offset_file is not None
    offset_dir, name = offset_file.group(1).rsplit("/", 1)
    assert name == Path(procfaults.CLOCK_FILE).name
    targets = re.search(r"def targets: \[([^\]]*)\]", mounts)
    assert targets is not None
    assert json.loads(f"[{targets.group(1)}]") == [offset_dir, images.SHIM_PATH, "/etc/ld.so.preload"]
    assert {"clockshim.c", "runc-clock.sh", "clock-mounts.jq"} <= set(images.ENGINE_ASSETS)
    assert "jq" in images.ENGINE_PACKAGES


# -- the shim, built for this host -----------------------------------------------------------------

@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the shim built like the engine's but reading ``offset`` in a directory of its own, that file)."""
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler on this host")
    work = tmp_path_factory.mktemp("clockshim")
    offset = work / "offset"
    library = work / "clockshim.so"
    subprocess.run(["gcc", *images.CLOCKSHIM_FLAGS.split(), f'-DOFFSET_FILE="{offset}"', "-o", str(library),
                    str(ASSETS / "clockshim.c")], check=True, capture_output=True, text=True)
    return library, offset


def _preloaded(library: Path, argv: list[str]) -> tuple[float, str, float]:
    """(host time before, output, host time after) of ``argv`` run with the shim preloaded."""
    before = time.time()
    out = subprocess.run(argv, env={**os.environ, "LD_PRELOAD": str(library)}, capture_output=True, text=True,
                         timeout=60)
    after = time.time()
    assert out.returncode == 0 and out.stderr == "", out.stderr
    return before, out.stdout, after


@needs_gcc
@pytest.mark.parametrize("text, seconds", [("86400.5\n", 86_400.5), ("-3600.25", -3600.25), ("  +2\n", 2.0),
                                           ("junk", 0.0), ("", 0.0), (None, 0.0)])
def test_the_shim_moves_every_realtime_reading_by_the_file(shim: tuple[Path, Path], text: str | None,
                                                           seconds: float) -> None:
    library, offset = shim
    offset.unlink(missing_ok=True)
    if text is not None:
        offset.write_text(text)
    probe = textwrap.dedent("""
        import datetime, time
        t0 = time.monotonic(); time.sleep(0.2); print(time.monotonic() - t0)
        print(time.time(), time.time_ns() / 1e9, time.clock_gettime(time.CLOCK_REALTIME),
              time.clock_gettime(5), datetime.datetime.now().timestamp())   # 5: CLOCK_REALTIME_COARSE
    """)
    before, out, after = _preloaded(library, [sys.executable, "-c", probe])
    slept, *readings = (float(x) for x in out.split())
    assert 0.2 <= slept < 2.0, "the monotonic clock, and a sleep on it, stay real"
    for seen in readings:
        assert before + seconds - 0.05 <= seen <= after + seconds + 0.05, (seconds, before, seen, after)
    before, out, after = _preloaded(library, ["date", "+%s.%N"])   # coreutils: timespec_get
    assert before + seconds - 0.05 <= float(out) <= after + seconds + 0.05, (seconds, out)


@needs_gcc
def test_the_shim_follows_a_rewritten_file_within_a_fifth_of_a_second(shim: tuple[Path, Path]) -> None:
    library, offset = shim
    offset.write_text("-86400")
    # The monotonic clock is the system's, the same in both processes: realtime minus monotonic,
    # there and here, is the offset the shim applies.
    probe = textwrap.dedent(f"""
        import pathlib, time
        def offset():
            return round(time.time() - time.monotonic() - {time.time() - time.monotonic()!r})
        print(offset())
        pathlib.Path({str(offset)!r}).write_text("3600.000000")
        time.sleep(0.25)
        print(offset())
        pathlib.Path({str(offset)!r}).unlink()
        time.sleep(0.25)
        print(offset())
    """)
    _, out, _ = _preloaded(library, [sys.executable, "-c", probe])
    assert out.split() == ["-86400", "3600", "0"]


# -- the engine's runc wrapper -----------------------------------------------------------------------

def _docker_config(rootfs: str = "rootfs", extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An OCI config.json as dockerd makes one (its default mounts), with ``extra`` mounts."""
    mounts = [{"destination": "/proc", "type": "proc", "source": "proc"},
              {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
              {"destination": "/etc/hosts", "type": "bind", "source": "/var/lib/docker/containers/x/hosts",
               "options": ["rbind", "rprivate"]}]
    return {"ociVersion": "1.0.2", "root": {"path": rootfs}, "mounts": mounts + (extra or [])}


class Engine:
    """The wrapper with its paths in a temporary directory and a real runc that records its calls."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.shims, self.clock, self.containers = tmp / "shims", tmp / "clock", tmp / "containers"
        self.shims.mkdir()
        shutil.copy(ASSETS / "clock-mounts.jq", self.shims)
        self.calls = tmp / "calls"
        real = tmp / "real-runc"
        real.write_text(f'#!/bin/sh\necho "$PWD $*" >> {self.calls}\n')
        real.chmod(0o755)
        script = (ASSETS / "runc-clock.sh").read_text()
        for old, new in (("REAL=/usr/sbin/runc", f"REAL={real}"), (f"SHIMS={images.SHIM_DIR}", f"SHIMS={self.shims}"),
                         (f"CLOCK_DIR={procfaults.CLOCK_DIR}", f"CLOCK_DIR={self.clock}"),
                         ("CONTAINERS=/var/lib/docker/containers", f"CONTAINERS={self.containers}")):
            assert old in script
            script = script.replace(old, new)
        self.wrapper = tmp / "runc"
        self.wrapper.write_text(script)
        self.wrapper.chmod(0o755)

    def bundle(self, cid: str, config: dict[str, Any], loader: str | None = "lib/ld-linux-aarch64.so.1",
               container_labels: dict[str, str] | None = None, preload: str | None = None) -> Path:
        bundle = self.tmp / "bundles" / cid
        (bundle / "rootfs" / "usr" / "lib").mkdir(parents=True)
        (bundle / "rootfs" / "lib").symlink_to("usr/lib")   # merged /usr, as Debian's
        if loader is not None:   # a relative link, as Debian's: the name is what counts
            (bundle / "rootfs" / loader).symlink_to("elsewhere/" + Path(loader).name)
        if preload is not None:
            (bundle / "rootfs" / "etc").mkdir()
            (bundle / "rootfs" / "etc" / "ld.so.preload").write_text(preload)
        (bundle / "config.json").write_text(json.dumps(config))
        (self.containers / cid).mkdir(parents=True)
        (self.containers / cid / "config.v2.json").write_text(json.dumps({"Config": {"Labels": container_labels}}))
        return bundle

    def run(self, *args: str, cwd: Path | None = None) -> str:
        """The wrapper called as containerd's shim calls runc; returns what the real runc was given."""
        self.calls.unlink(missing_ok=True)
        subprocess.run([str(self.wrapper), "--root", "/run/runc", "--log", "log.json", "--log-format", "json",
                        *args], cwd=cwd or self.tmp, check=True, timeout=30)
        return self.calls.read_text().strip()


SERVICE = {labels.SERVICE: "web", labels.STACK: "demo"}


@needs_jq
def test_a_service_container_gets_the_shim_of_its_arch_and_runc_its_arguments(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    for cid, loader, arch in (("a1", "lib/ld-linux-aarch64.so.1", "arm64"), ("b2", "lib/ld-linux-armhf.so.3", "armv7")):
        bundle = engine.bundle(cid, _docker_config(), loader=loader, container_labels=SERVICE)
        args = ("create", "--bundle", str(bundle), "--pid-file", f"{bundle}/init.pid", cid)
        assert engine.run(*args) == f"{tmp_path} --root /run/runc --log log.json --log-format json {' '.join(args)}"
        mounts = {m["destination"]: m for m in json.loads((bundle / "config.json").read_text())["mounts"]}
        assert mounts["/dev/.armstack-clockshim.so"]["source"] == f"{engine.shims}/clockshim-{arch}.so"
        assert mounts["/etc/ld.so.preload"]["source"] == f"{engine.shims}/ld.so.preload"
        assert mounts["/dev/.armstack-clock"]["source"] == str(engine.clock)
        assert all("ro" in mounts[t]["options"] for t in ("/dev/.armstack-clockshim.so", "/etc/ld.so.preload",
                                                           "/dev/.armstack-clock"))
        assert "noexec" not in mounts["/dev/.armstack-clockshim.so"]["options"]   # the loader maps it executable
        assert list(mounts)[:3] == ["/proc", "/dev", "/etc/hosts"]                 # docker's own first, unchanged
        assert engine.clock.is_dir()
        # A second create of the same bundle (a restart) adds nothing more.
        engine.run(*args)
        assert len(json.loads((bundle / "config.json").read_text())["mounts"]) == 6


@needs_jq
@pytest.mark.parametrize("case", ["build step", "musl", "own preload", "bind over /etc", "bind over /dev"])
def test_other_containers_are_created_as_they_are(tmp_path: Path, case: str) -> None:
    engine = Engine(tmp_path)
    config = _docker_config(extra={"bind over /etc": [{"destination": "/etc", "type": "bind", "source": "/x"}],
                                   "bind over /dev": [{"destination": "/dev", "type": "bind", "source": "/dev"}]}
                            .get(case))
    bundle = engine.bundle("c3", config, container_labels=None if case == "build step" else SERVICE,
                           loader="lib/ld-musl-aarch64.so.1" if case == "musl" else "lib/ld-linux-aarch64.so.1",
                           preload="/usr/lib/libjemalloc.so.2\n" if case == "own preload" else None)
    before = (bundle / "config.json").read_text()
    engine.run("create", "--bundle", str(bundle), "c3")
    assert (bundle / "config.json").read_text() == before


@needs_jq
def test_the_bundle_defaults_to_the_working_directory_and_other_commands_pass_through(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    bundle = engine.bundle("d4", _docker_config(), container_labels=SERVICE, preload="")   # empty: a past mount point
    assert engine.run("start", "d4", cwd=bundle).endswith("--log-format json start d4")
    assert len(json.loads((bundle / "config.json").read_text())["mounts"]) == 3
    engine.run("create", "d4", cwd=bundle)
    assert len(json.loads((bundle / "config.json").read_text())["mounts"]) == 6
