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
# After a power cut the journal is replayed by mount; preen anything else it left behind.
e2fsck -p "$DISK" >/dev/null 2>&1 || true

# Loop device nodes: the container may use any of them (device cgroup rule b 7:*), but /dev
# is private to the container, so the nodes must be made here.
i=0
while [ $i -lt 64 ]; do
  [ -e /dev/loop$i ] || mknod /dev/loop$i b 7 $i 2>/dev/null || true
  i=$((i + 1))
done

mkdir -p /data /var/lib/docker /run/armstack
mountpoint -q /data || mount -o loop "$DISK" /data
mountpoint -q /var/lib/docker || mount --bind /data /var/lib/docker
rm -f /run/armstack/docker.sock /var/run/docker.pid

exec dockerd --host unix:///run/armstack/docker.sock --host tcp://0.0.0.0:2375 \
  --data-root /var/lib/docker --storage-driver overlay2 ${ARMSTACK_DOCKERD_ARGS:-}
