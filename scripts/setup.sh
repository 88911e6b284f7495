#!/usr/bin/env bash
# armstack machine setup: installs and starts what the kit needs, or says what is missing.
#
# As root on Debian/Ubuntu it installs what is missing (Docker engine, QEMU user emulation
# registered in binfmt_misc with the F flag, mmdebstrap, e2fsprogs, xfsprogs, docker-compose 1.29
# for the compose parity test) and creates the venv.
# Otherwise it checks each prerequisite and prints the command that fixes it (exit 1).
# It never restarts an engine that already runs; with nothing missing it takes seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${ARMSTACK_VENV:-.venv}
PYTHON=${PYTHON:-python3}
missing=()     # human-readable lines: "what is missing -> command that fixes it"
apt_pkgs=()    # Debian packages to install when we may

say() { printf '\033[1marmstack setup:\033[0m %s\n' "$*" >&2; }

is_root() { [ "$(id -u)" -eq 0 ]; }
is_debian_like() {
  [ -r /etc/os-release ] || return 1
  # shellcheck disable=SC1091
  . /etc/os-release
  case " ${ID:-} ${ID_LIKE:-} " in *" debian "*|*" ubuntu "*) return 0 ;; esac
  return 1
}
can_install() { is_root && is_debian_like && command -v apt-get >/dev/null; }

need() {  # need <command> <debian package>
  command -v "$1" >/dev/null 2>&1 || apt_pkgs+=("$2")
}

engine_up() { docker info >/dev/null 2>&1; }

binfmt_ok() {  # binfmt_ok <qemu name>: registered, enabled, with the F (fix binary) flag
  local f=/proc/sys/fs/binfmt_misc/$1
  [ -r "$f" ] && grep -q '^enabled' "$f" && grep -q '^flags:.*F' "$f"
}

# ---- what is missing -------------------------------------------------------------------
command -v dockerd >/dev/null 2>&1 || engine_up || apt_pkgs+=(docker.io)
need mmdebstrap mmdebstrap   # base root filesystems (harness.images); debootstrap is the fallback
need arch-test arch-test     # mmdebstrap checks with it that QEMU runs the foreign arch
need mkfs.ext4 e2fsprogs
need mkfs.xfs xfsprogs       # the card store: device cards cloned by reflink (harness/cardstore.py)
need update-binfmts binfmt-support
need docker-compose docker-compose   # 1.29, the reference of the compose parity test
need ssh openssh-client              # `armstack push ssh://`, tested against an sshd in a container
qemu_missing=0
{ binfmt_ok qemu-aarch64 && binfmt_ok qemu-arm; } || qemu_missing=1
command -v qemu-aarch64-static >/dev/null 2>&1 || qemu_missing=1
"$PYTHON" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || apt_pkgs+=(python3 python3-venv)

if ! can_install; then
  # Report-only mode: say exactly what is missing and how to fix it.
  for p in "${apt_pkgs[@]}"; do missing+=("package $p -> sudo apt-get install -y $p"); done
  [ "$qemu_missing" -eq 0 ] || missing+=("QEMU user emulation in binfmt_misc (qemu-aarch64, qemu-arm, F flag) -> sudo apt-get install -y qemu-user-static binfmt-support && sudo update-binfmts --enable")
  engine_up || missing+=("a running Docker engine reachable by $(id -un) -> sudo dockerd & (or: sudo systemctl start docker; sudo usermod -aG docker $(id -un))")
  if [ ${#missing[@]} -gt 0 ]; then
    is_root || say "not running as root: cannot install, checking only"
    is_debian_like || say "not a Debian-like system: cannot install, checking only"
    say "missing prerequisites:"
    for m in "${missing[@]}"; do printf '  - %s\n' "$m" >&2; done
    exit 1
  fi
else
  if [ ${#apt_pkgs[@]} -gt 0 ] || [ "$qemu_missing" -eq 1 ]; then
    export DEBIAN_FRONTEND=noninteractive
    say "installing: ${apt_pkgs[*]} $( [ "$qemu_missing" -eq 1 ] && echo qemu-user-static)"
    qemu_suite=()
    if [ "$qemu_missing" -eq 1 ]; then
      # QEMU 10 from bookworm-backports where the release has it: better emulation fidelity.
      # The mirror is read from the machine's own sources, never hard-coded.
      . /etc/os-release
      src=/etc/apt/sources.list.d/debian.sources
      if [ "${VERSION_CODENAME:-}" = bookworm ] && [ -r "$src" ]; then
        uri=$(awk '/^URIs:/ {print $2; exit}' "$src")
        key=$(awk '/^Signed-By:/ {print $2; exit}' "$src")
        cat > /etc/apt/sources.list.d/armstack-backports.sources <<SRC
Types: deb
URIs: $uri
Suites: bookworm-backports
Components: main
Signed-By: ${key:-/usr/share/keyrings/debian-archive-keyring.gpg}
SRC
        qemu_suite=(-t bookworm-backports)
      fi
    fi
    apt-get update -qq
    [ ${#apt_pkgs[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${apt_pkgs[@]}" >/dev/null
    if [ "$qemu_missing" -eq 1 ]; then
      apt-get install -y -qq --no-install-recommends "${qemu_suite[@]}" qemu-user-static binfmt-support >/dev/null \
        || apt-get install -y -qq --no-install-recommends qemu-user-static binfmt-support >/dev/null
    fi
  fi
  if ! { binfmt_ok qemu-aarch64 && binfmt_ok qemu-arm; }; then
    [ -w /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
    update-binfmts --enable >/dev/null 2>&1 || true
    # QEMU >= 8 packages register through systemd-binfmt (/usr/lib/binfmt.d); with no systemd
    # running (CI runners, containers) write those entries to the kernel ourselves.
    for name in qemu-aarch64 qemu-arm; do
      conf=/usr/lib/binfmt.d/$name.conf
      if ! binfmt_ok "$name" && [ -r "$conf" ]; then
        [ ! -e "/proc/sys/fs/binfmt_misc/$name" ] || echo -1 > "/proc/sys/fs/binfmt_misc/$name"
        grep -v '^#' "$conf" > /proc/sys/fs/binfmt_misc/register
      fi
    done
    binfmt_ok qemu-aarch64 && binfmt_ok qemu-arm || { say "QEMU binfmt handlers did not register (see /proc/sys/fs/binfmt_misc)"; exit 1; }
  fi
  if ! engine_up; then
    # No systemd on many CI runners and containers: start dockerd directly. Never restart a running one.
    say "starting dockerd (log: /var/log/dockerd.log)"
    nohup dockerd > /var/log/dockerd.log 2>&1 &
    for _ in $(seq 1 60); do engine_up && break; sleep 0.5; done
    engine_up || { say "dockerd did not come up; last log lines:"; tail -n 20 /var/log/dockerd.log >&2; exit 1; }
  fi
fi

# ---- Python environment ----------------------------------------------------------------
stamp="$VENV/.armstack-deps"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip
  "$VENV/bin/pip" install -q -e '.[harness,test]'
  echo "$want" > "$stamp"
fi
say "ready: engine $(docker version -f '{{.Server.Version}}' 2>/dev/null), qemu $(qemu-aarch64-static --version | head -1 | awk '{print $3}'), venv $VENV"
