#!/bin/sh
# All-in-one device image: dockerd and the runtime in one container, the way the resin.io
# recipe ran. /data is the board's persistent partition; binding it over /var/lib/docker keeps
# images and volumes across reboots and updates.
set -eu
mkdir -p /data/docker /var/lib/docker /data/armstack
mountpoint -q /var/lib/docker || mount --bind /data/docker /var/lib/docker
rm -f /var/run/docker.pid
dockerd --data-root /var/lib/docker > /var/log/dockerd.log 2>&1 &
engine=$!
i=0
until docker info >/dev/null 2>&1; do
  kill -0 "$engine" 2>/dev/null || { echo "armstack | dockerd exited:"; tail -n 20 /var/log/dockerd.log; exit 1; }
  i=$((i + 1)); [ $i -lt 600 ] || { echo "armstack | dockerd did not answer in 60s"; exit 1; }
  sleep 0.1
done
exec armstack up --data-dir /data/armstack "$@"
