#!/bin/sh
# The device engine's runc: the real one, after giving each new container of the stack the clock shim.
#
# Installed as /usr/local/sbin/runc, ahead of /usr/sbin/runc on PATH, where containerd's shim
# looks runc up: the engine's default runtime stays "runc" (HostConfig.Runtime as compose makes
# it, no bind in `docker inspect`). On `create` of a container the runtime made for a service
# (its io.armstack.service label), it adds to the bundle's config.json (clock-mounts.jq)
# read-only binds of the shim (harness/assets/clockshim.c) built for the container's glibc, of
# an /etc/ld.so.preload naming it, and of the device's clock directory, whose offset file the
# shim and the runtime's clock hook both read (harness/procfaults.py); `docker exec`s in the
# container get the shim too. Build steps and other containers are left alone: runc makes a
# mount point that is missing in the container's own layer, and a build would commit it.
# Whatever goes wrong here, the container is created as asked: the shim is an extra, never a
# reason to fail.
REAL=/usr/sbin/runc
SHIMS=/usr/local/lib/armstack
CLOCK_DIR=/srv/armstack/clock
CONTAINERS=/var/lib/docker/containers
SERVICE_LABEL=io.armstack.service

inject() {   # bundle directory, container id
  config=$1/config.json
  [ -f "$config" ] && [ -n "$2" ] || return 0
  jq -e --arg key "$SERVICE_LABEL" '.Config.Labels[$key] // empty' "$CONTAINERS/$2/config.v2.json" \
    >/dev/null || return 0
  root=$(jq -r '.root.path // empty' "$config") || return 0
  case $root in /*) ;; *) root=$1/$root ;; esac
  # Only a glibc userland reads /etc/ld.so.preload (musl ignores it); the loader says which arch.
  if [ -e "$root/lib/ld-linux-aarch64.so.1" ] || [ -L "$root/lib/ld-linux-aarch64.so.1" ]; then
    arch=arm64
  elif [ -e "$root/lib/ld-linux-armhf.so.3" ] || [ -L "$root/lib/ld-linux-armhf.so.3" ]; then
    arch=armv7
  else
    return 0
  fi
  # An image's own preload list is left alone (an empty one is the mount point of a previous start).
  [ -s "$root/etc/ld.so.preload" ] && return 0
  mkdir -p "$CLOCK_DIR" || return 0
  jq -e --arg shim "$SHIMS/clockshim-$arch.so" --arg preload "$SHIMS/ld.so.preload" --arg clock "$CLOCK_DIR" \
    -f "$SHIMS/clock-mounts.jq" "$config" > "$config.clock" && mv "$config.clock" "$config"
  rm -f "$config.clock"
}

# containerd's shim runs `runc [global options] create --bundle DIR [options] ID`, in DIR.
bundle='' create='' previous='' id=''
for arg in "$@"; do
  case $previous in --bundle|-b) bundle=$arg ;; esac
  case $arg in
    create) create=1 ;;
    --bundle=*|-b=*) bundle=${arg#*=} ;;
  esac
  previous=$arg id=$arg
done
if [ -n "$create" ]; then inject "${bundle:-$PWD}" "$id" 2>/dev/null || true; fi
exec "$REAL" "$@"
