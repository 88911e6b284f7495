"""A cold setup: which steps it runs, the bootstrap commands, and each step's share in progress lines."""

from __future__ import annotations

from pathlib import Path

import docker.errors
import pytest

from harness import images, progress, rootfshooks
from harness.arch import get_arch

pytestmark = pytest.mark.unit

ARM64 = get_arch("arm64")
ARMV7 = get_arch("armv7")


class NoImages:
    """A host engine with none of the kit's images."""

    class images:  # noqa: N801 - mirrors docker.DockerClient.images
        @staticmethod
        def get(tag: str) -> None:
            raise docker.errors.ImageNotFound(tag)


def test_mmdebstrap_writes_the_trimmed_tarball_itself() -> None:
    cmd = images.bootstrap_command("mmdebstrap", ARMV7, ("python3", "ca-certificates"), True,
                                   Path("/c/x.tar.tmp"), "http://mirror/debian")
    assert cmd[:4] == ["mmdebstrap", "--arch=armhf", "--variant=minbase", "--include=python3,ca-certificates"]
    assert "--format=tar" in cmd and cmd[-3:] == ["bookworm", "/c/x.tar.tmp", "http://mirror/debian"]
    assert any("EXTERNALLY-MANAGED" in part for part in cmd)


def test_debootstrap_fills_a_directory_and_a_plain_rootfs_has_no_hook() -> None:
    cmd = images.bootstrap_command("debootstrap", ARM64, (), False, Path("/w/root"), "http://m/debian")
    assert cmd == ["debootstrap", "--arch=arm64", "--variant=minbase", "bookworm", "/w/root", "http://m/debian"]
    mm = images.bootstrap_command("mmdebstrap", ARM64, (), False, Path("/w/r.tar"), "http://m/debian")
    assert not any("customize-hook" in part for part in mm) and not any(p.startswith("--include") for p in mm)


def test_mmdebstrap_lays_out_merged_usr_as_debootstrap_does(monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setattr(images, "MERGED_USR_HOOKS", tmp_path)
    mm = images.bootstrap_command("mmdebstrap", ARM64, (), False, Path("/w/r.tar"), "http://m/debian")
    assert f"--hook-dir={tmp_path}" in mm
    monkeypatch.setattr(images, "MERGED_USR_HOOKS", tmp_path / "absent")
    mm = images.bootstrap_command("mmdebstrap", ARM64, (), False, Path("/w/r.tar"), "http://m/debian")
    assert not any(part.startswith("--hook-dir") for part in mm)


def test_a_cold_setup_plans_every_rootfs_and_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMSTACK_CACHE", str(tmp_path))
    monkeypatch.setattr(images, "_installed_bootstrapper", lambda: "mmdebstrap")
    steps = images.setup_steps(NoImages(), [ARM64, ARMV7], ["engine", "runtime", "debian"])  # type: ignore[arg-type]
    # The python rootfs is a layer on the debian one, which is made first.
    assert list(steps)[:5] == ["rootfs debian arm64", "rootfs python arm64", "rootfs debian armv7",
                               "rootfs python armv7", "rootfs engine amd64"]
    assert set(list(steps)[5:]) == {f"image {k} {a}" for k in ("python", "runtime-deps", "runtime", "debian")
                                    for a in ("arm64", "armv7")} | {"image engine amd64"}
    # A cached rootfs is not made again; its image still is built.
    images.rootfs_path(ARMV7, images.BASES["debian"].packages).parent.mkdir(parents=True)
    images.rootfs_path(ARMV7, images.BASES["debian"].packages).touch()
    again = images.setup_steps(NoImages(), [ARMV7], ["debian"])  # type: ignore[arg-type]
    assert list(again) == ["image debian armv7"]


def test_progress_lines_say_the_share_of_the_whole() -> None:
    plan = progress.Plan("setup", {"rootfs python arm64": 150.0, "image runtime arm64": 110.0, "image x": 40.0})
    assert plan.share("rootfs python arm64") == pytest.approx(0.5)
    assert plan.label("image runtime arm64", "image armstack/runtime") == \
        "[2/3, 37% of setup] image armstack/runtime"
    assert plan.label("not planned", "load into device") == "load into device"
    plan.done.update({"rootfs python arm64": 90.0, "image x": 10.0})
    assert "rootfs python arm64 90s (90%), image x 10s (10%)" in plan.summary()


def test_steps_of_a_plan_record_their_time_and_an_empty_plan_shows_nothing(
        capsys: pytest.CaptureFixture[str]) -> None:
    with progress.plan("setup", {"a": 1.0, "b": 3.0}) as current:
        with progress.step("first", key="a") as update:
            update("some output")
        with progress.step("unplanned"):
            pass
    assert set(current.done) == {"a"}
    err = capsys.readouterr().err
    assert "[1/2, 25% of setup] first ..." in err and "armstack: setup took" in err
    with progress.plan("setup", {}):
        pass
    assert "setup took" not in capsys.readouterr().err


def test_mmdebstrap_leaves_out_what_slim_images_leave_out_and_hooks_emulated_python_only() -> None:
    arm = images.bootstrap_command("mmdebstrap", ARM64, images.BASES["python"].packages, True,
                                   Path("/w/r.tar"), "http://m/debian")
    rules = [part.removeprefix("--dpkgopt=") for part in arm if part.startswith("--dpkgopt=")]
    assert "path-exclude=/usr/share/man/*" in rules and "path-include=/usr/share/doc/*/copyright" in rules
    # An include after its exclude: dpkg applies the last matching rule.
    assert rules.index("path-include=/usr/share/locale/locale.alias") > rules.index("path-exclude=/usr/share/locale/*")
    assert any(part.startswith("--essential-hook=") for part in arm) == bool(rootfshooks.native_tools())
    native = images.bootstrap_command("mmdebstrap", images.get_arch("amd64"), images.BASES["python"].packages,
                                      True, Path("/w/r.tar"), "http://m/debian")
    assert not any(part.startswith("--essential-hook=") for part in native)   # nothing emulated to spare


def test_images_are_made_in_independent_chains_each_in_the_order_it_needs() -> None:
    chains = images._chains([ARM64, ARMV7], ["engine", "python", "debian", "runtime"])
    named = [[f"{kind} {arch.name}" for kind, arch in chain] for chain in chains]
    assert named == [["engine amd64"], ["python arm64", "runtime arm64"], ["debian arm64"],
                     ["python armv7", "runtime armv7"], ["debian armv7"]]
    # A device asks for the engine and the runtime only: the runtime's chain makes its python image.
    assert [[k for k, _ in c] for c in images._chains([ARM64], ["engine", "runtime"])] == [["engine"], ["runtime"]]


def test_only_mmdebstrap_makes_the_python_rootfs_as_a_layer_on_the_debian_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARMSTACK_CACHE", str(tmp_path))
    python, debian = images.BASES["python"].packages, images.BASES["debian"].packages
    assert images.layer_base(python, "mmdebstrap") == debian
    assert images.layer_base(python, "debootstrap") is None and images.layer_base(debian, "mmdebstrap") is None
    monkeypatch.setattr(images, "_installed_bootstrapper", lambda: "debootstrap")
    steps = images.setup_steps(NoImages(), [ARM64], ["runtime"])  # type: ignore[arg-type]
    assert [s for s in steps if s.startswith("rootfs")] == ["rootfs python arm64"]   # bootstrapped alone
    monkeypatch.setattr(images, "_installed_bootstrapper", lambda: "mmdebstrap")
    steps = images.setup_steps(NoImages(), [ARM64], ["runtime"])  # type: ignore[arg-type]
    assert [s for s in steps if s.startswith("rootfs")] == ["rootfs debian arm64", "rootfs python arm64"]
    # A cached layer needs no base: its image is made from it alone.
    images.rootfs_path(ARM64, python).parent.mkdir(parents=True)
    images.rootfs_path(ARM64, python).touch()
    assert not any(s.startswith("rootfs") for s in images.setup_steps(NoImages(), [ARM64], ["runtime"]))  # type: ignore[arg-type]


def test_a_layer_installs_only_its_own_packages_on_the_base_tree_and_sets_apt_marks() -> None:
    base, work = Path("/c/debian.tar"), Path("/c/work")
    cmd = images.bootstrap_command("mmdebstrap", ARM64, images.BASES["python"].packages, True,
                                   Path("/c/python.tar.tmp"), "http://m/debian", layer_on=base, work=work)
    assert "--variant=custom" in cmd and "--include=" + ",".join(images.BASES["python"].packages) in cmd
    setup = next(part for part in cmd if part.startswith("--setup-hook="))
    assert f'tar -C "$1" -xf {base}' in setup and str(work / "base-status") in setup
    assert not any(part.startswith("--hook-dir") for part in cmd)   # the base's tree is merged-/usr already
    assert "--skip=essential/unlink" in cmd   # the certificates come from the kept package
    hooks = [part.split("=", 1)[0] for part in cmd if part.endswith("-hook") or "-hook=" in part]
    if rootfshooks.native_tools():
        # dpkg installs a layer in the "essential" step: the tools are diverted before it, not after.
        assert "--extract-hook" in hooks and "--essential-hook" not in hooks
    marks = next(part for part in cmd if "--mark-automatic" in part)
    assert marks.startswith("--customize-hook=") and '--apt-config "$MMDEBSTRAP_APT_CONFIG"' in marks
    assert "--requested python3,python3-pip" in marks
    # debootstrap has no layers: it bootstraps the whole rootfs.
    deb = images.bootstrap_command("debootstrap", ARM64, images.BASES["python"].packages, True, Path("/w/root"),
                                   "http://m/debian", layer_on=base, work=work)
    assert "--variant=minbase" in deb and not any("hook" in part for part in deb)


def test_a_new_base_makes_its_layer_and_the_layers_image_again(monkeypatch: pytest.MonkeyPatch) -> None:
    python = images.BASES["python"].packages
    before, image_before = images._rootfs_key(ARM64, python), images._base_key("python", ARM64)
    monkeypatch.setitem(images.BASES, "debian", images.BaseKind("debian", (), ("tzdata",), '["bash"]'))
    assert images._rootfs_key(ARM64, python) != before and images._base_key("python", ARM64) != image_before


def test_a_layer_without_a_private_work_directory_is_refused() -> None:
    with pytest.raises(ValueError, match="private work directory"):
        images.bootstrap_command("mmdebstrap", ARM64, images.BASES["python"].packages, True, Path("/c/p.tar"),
                                 "http://m/debian", layer_on=Path("/c/debian.tar"))
