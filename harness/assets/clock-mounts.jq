# The clock shim's mounts, added to a container's OCI config.json by the device engine's runc
# (harness/assets/runc-clock.sh): read-only binds of the shim ($shim), of the preload list that
# names it ($preload, at /etc/ld.so.preload) and of the device's clock directory ($clock).
def targets: ["/dev/.armstack-clock", "/dev/.armstack-clockshim.so", "/etc/ld.so.preload"];
def under($dir): . == $dir or startswith(($dir | rtrimstr("/")) + "/");
# A mount of the container's own at a target or at a directory above one (a tmpfs aside, which
# is writable): runc could not make the target's mount point in it and the container would not
# start, or it would write into the user's bind source. Then the output is null (jq -e fails)
# and the config is left as it is; so is one that has the mounts already.
if [.mounts[]? | select(.type != "tmpfs") | .destination as $d | targets[] | select(under($d))] | length > 0
then null
else .mounts += [
  {destination: "/dev/.armstack-clock", type: "bind", source: $clock,
   options: ["rbind", "ro", "nosuid", "nodev", "noexec"]},
  {destination: "/dev/.armstack-clockshim.so", type: "bind", source: $shim,
   options: ["bind", "ro", "nosuid", "nodev"]},
  {destination: "/etc/ld.so.preload", type: "bind", source: $preload,
   options: ["bind", "ro", "nosuid", "nodev"]}
] end
