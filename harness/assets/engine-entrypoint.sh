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

# CARD is where the card is mounted. The harness may point it into a directory shared with
# the runtime container (mount propagation), so the runtime sees the card's real free space.
CARD=${ARMSTACK_CARD_MOUNT:-/data}
mkdir -p "$CARD" /data /var/lib/docker /run/armstack
if ! mountpoint -q "$CARD"; then
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
rm -f /run/armstack/docker.sock /var/run/docker.sock /var/run/docker.pid

# The runtime's socket (shared volume), the standard one (as on a board), and TCP for the host.
# --tls=false says outright that the TCP socket is plain (it is reachable only on the host's
# bridge): without it dockerd 20.10 waits 15 s at every start to warn about it.
exec dockerd --host unix:///run/armstack/docker.sock --host unix:///var/run/docker.sock --host tcp://0.0.0.0:2375 \
  --tls=false --data-root /var/lib/docker --storage-driver overlay2 ${ARMSTACK_DOCKERD_ARGS:-}
