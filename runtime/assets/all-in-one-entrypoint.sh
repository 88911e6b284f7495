#!/bin/sh
# All-in-one device image: dockerd and the runtime in one container, the way the resin.io
# recipe ran. /data is the board's persistent volume: /data/docker is bound over
# /var/lib/docker (images, containers and volumes survive reboots and updates),
# /data/armstack holds the supervisor's state and /data/stack the stack `armstack push` ships.
#
# Arguments go to `armstack up`; with none it supervises /data/stack when a stack was pushed
# there, else /usr/src/app (a stack baked into an image built FROM this one).
# SIGTERM stops the supervisor (which stops the stack), then dockerd, so neither is killed
# mid-write when the board shuts down; give `docker run` a --stop-timeout long enough for that.
set -eu
DATA=/data
mkdir -p "$DATA/docker" "$DATA/armstack" /var/lib/docker
chmod 0700 "$DATA/armstack"
mountpoint -q /var/lib/docker || mount --bind "$DATA/docker" /var/lib/docker
# Left behind by the previous boot of this container: dockerd refuses to start over a live-looking pid file.
rm -f /var/run/docker.pid /var/run/docker.sock

say() { echo "armstack-device | $*"; }

dockerd --data-root /var/lib/docker ${ARMSTACK_DOCKERD_ARGS:-} >> /var/log/dockerd.log 2>&1 &
engine=$!
i=0
until docker version >/dev/null 2>&1; do
  if ! kill -0 "$engine" 2>/dev/null; then
    say "dockerd exited before it answered; the end of /var/log/dockerd.log:"
    tail -n 20 /var/log/dockerd.log
    exit 1
  fi
  i=$((i + 1))
  if [ "$i" -ge 600 ]; then
    say "dockerd did not answer within 60 s; the end of /var/log/dockerd.log:"
    tail -n 20 /var/log/dockerd.log
    kill -TERM "$engine" 2>/dev/null || true
    exit 1
  fi
  sleep 0.1
done
say "dockerd is up (pid $engine)"

if [ "$#" -eq 0 ]; then
  stack=/usr/src/app
  for name in compose.yaml compose.yml docker-compose.yml docker-compose.yaml; do
    if [ -e "$DATA/stack/$name" ]; then stack=$DATA/stack; break; fi
  done
  set -- -f "$stack"
fi

armstack up "$@" &
supervisor=$!
trap 'kill -TERM "$supervisor" 2>/dev/null || true' TERM INT
# `wait` returns early when a trapped signal arrives: wait again until the supervisor is gone.
code=0
while :; do
  if wait "$supervisor"; then code=0; else code=$?; fi
  kill -0 "$supervisor" 2>/dev/null || break
done
trap - TERM INT
say "the supervisor exited ($code); stopping dockerd"
kill -TERM "$engine" 2>/dev/null || true
wait "$engine" || true
exit "$code"
