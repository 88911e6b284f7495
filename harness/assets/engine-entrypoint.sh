#!/bin/sh
# Device engine: a native dockerd whose /var/lib/docker is a loop-mounted ext4 "SD card".
#
# The card is an image file on a named volume (/sdcard), so a reboot or a power cut (the
# container killed and started again) finds the same images and data. The runtime talks to
# the engine through a socket on a volume it shares (/run/armstack).
set -eu

DISK=/sdcard/disk.img
SIZE=${ARMSTACK_DISK_SIZE:-2G}

if [ ! -f "$DISK" ]; then
  truncate -s "$SIZE" "$DISK.new"
  mkfs.ext4 -q -F -L sdcard "$DISK.new"
  mv "$DISK.new" "$DISK"
fi

# Loop device nodes: the container may use any of them (device cgroup rule b 7:*), but /dev
# is private to the container, so the nodes must be made here.
i=0
while [ $i -lt 64 ]; do
  [ -e /dev/loop$i ] || mknod /dev/loop$i b 7 $i 2>/dev/null || true
  i=$((i + 1))
done

# The card's controller: cardfs (harness/assets/cardfs.c) serves the image file through FUSE
# with a volatile write cache, so a power cut loses what was never flushed, and injects the
# card's faults (harness/card.py writes to $CARDFS/ctl). ARMSTACK_CARD_CACHE=off, or a host
# without /dev/fuse, mounts the image file directly (the host keeps every write).
CARDFS=/run/cardfs
card_cache_on() {
  [ "${ARMSTACK_CARD_CACHE:-on}" != off ] && [ -c /dev/fuse ] && command -v cardfs >/dev/null
}

# Runs a command in cardfs's mount namespace, where its files are.
cardctl() { nsenter -t "$(pgrep -xo cardfs)" -m "$@"; }

# Mounts the card through cardfs. A card mount still standing is the previous boot's (shared
# with the host, so it outlived that boot's container), its cardfs gone with it: detach it, as
# the board's power-off did, and only then check the image.
card_layer_mount() {
  if mountpoint -q "$CARD"; then umount -l "$CARD"; fi
  e2fsck -p "$DISK" >/dev/null 2>&1 || true
  mkdir -p "$CARDFS"
  # cardfs gets a mount namespace of its own, made before the card is mounted: were it the last
  # process of this namespace to exit, its exit would unmount the card and wait for the card's
  # flush on itself, forever. The loop device is set up from its namespace, mounted in this one.
  # The card's controller is hardware on a board, beside the CPU; here it is a process, so it runs
  # above normal priority: a loaded host slows it no more than it slows the kernel's own block path
  # (the plain card's). Without CAP_SYS_NICE, nice warns and runs it at the normal priority.
  CARDFS_CACHE_MB=${ARMSTACK_CARD_CACHE_MB:-512} nice -n -10 unshare -m --propagation private \
    cardfs "$DISK" "$CARDFS" -o fsname=cardfs
  # Direct I/O: the loop device hands cardfs whole requests, several at once (asynchronous), not
  # one at a time waiting for each answer; the kernel falls back to buffered I/O where it cannot.
  loop=$(cardctl losetup -f --show --direct-io=on "$CARDFS/disk.img")
  # A card that fails writes turns read-only, as a board's root filesystem does (errors=remount-ro).
  mount -o errors=remount-ro "$loop" "$CARD"
  losetup -d "$loop"   # the device is busy: it detaches itself once the card is unmounted
}

# Runs dockerd until it exits; a `docker stop` stops it. Then the card is synced and the cache
# written back: an orderly power-off (or a crashed engine, see harness kill_engine) loses nothing.
card_layer_run() {
  "$@" &
  engine=$!
  trap 'kill -TERM $engine 2>/dev/null' TERM INT
  status=0
  while kill -0 "$engine" 2>/dev/null; do wait "$engine" || status=$?; done
  sync -f "$CARD" 2>/dev/null || true
  cardctl sh -c "echo flush > $CARDFS/ctl" 2>/dev/null || true
  exit "$status"
}

# CARD is where the card is mounted. The harness may point it into a directory shared with
# the runtime container (mount propagation), so the runtime sees the card's real free space.
CARD=${ARMSTACK_CARD_MOUNT:-/data}
mkdir -p "$CARD" /data /var/lib/docker /run/armstack
if card_cache_on; then
  card_layer_mount
elif ! mountpoint -q "$CARD"; then
  # After a power cut the journal is replayed by mount; preen anything else first. Never
  # fsck a mounted card: a shared mount can outlive a killed engine container.
  e2fsck -p "$DISK" >/dev/null 2>&1 || true
  mount -o loop "$DISK" "$CARD"
fi
[ "$CARD" = /data ] || mountpoint -q /data || mount --bind "$CARD" /data
mountpoint -q /var/lib/docker || mount --bind "$CARD" /var/lib/docker
# The engine's own overlay mounts stay inside this container: only the card itself is shared.
mount --make-rprivate /var/lib/docker 2>/dev/null || true
[ "$CARD" = /data ] || mount --make-rprivate /data 2>/dev/null || true
# A board's /run is a tmpfs, empty at boot; this container's is not. After a power cut the
# engine's runtime state would outlive it: a stale containerd.pid names a pid that the restarted
# container has given to another process, dockerd takes that for a running containerd, waits for
# its socket and fails ("timeout waiting for containerd to start"), at every boot from then on.
rm -rf /var/run/docker
rm -f /run/armstack/docker.sock /var/run/docker.sock /var/run/docker.pid

# The runtime's socket (shared volume), the standard one (as on a board), and TCP for the host
# unless ARMSTACK_ENGINE_TCP=off (the harness then uses the runtime's socket, through the volume):
# dockerd pauses 1 s before it serves plain TCP, at every start. --tls=false says outright that the
# TCP socket is plain (it is reachable only on the host's bridge): without it dockerd 20.10 waits
# 15 s at every start to warn about it.
tcp=""
[ "${ARMSTACK_ENGINE_TCP:-on}" = off ] || tcp="--host tcp://0.0.0.0:2375 --tls=false"
# shellcheck disable=SC2086  # $tcp: two options or none
set -- dockerd --host unix:///run/armstack/docker.sock --host unix:///var/run/docker.sock $tcp \
  --data-root /var/lib/docker --storage-driver overlay2 ${ARMSTACK_DOCKERD_ARGS:-}
if card_cache_on; then card_layer_run "$@"; fi
exec "$@"
