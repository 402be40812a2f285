#!/bin/sh
# rootfs.sh OUT UID GID: lays out the final image's filesystem in OUT, with
# every path's owner and mode as the image has them. The Dockerfile's build
# stage runs it and its final stage copies OUT whole (COPY --from=build
# /out/rootfs/ /): a directory's contents are copied with their owner and
# mode, so /state keeps what it gets here (copying /out/state to /state
# would copy only what is inside it, and /state would be root:root 0755).
# The Go test TestDockerImageLayout runs this script and checks the result,
# without a Docker daemon.
set -eu
out=$1 uid=$2 gid=$3
src=$(dirname "$0")
bin=${BIN:-/out/integrityd}
install -d -m 0755 -o 0 -g 0 "$out" "$out/etc" "$out/etc/integrityd"
# The binary, root's: the daemon's uid cannot replace it.
install -m 0755 -o 0 -g 0 "$bin" "$out/integrityd"
# The configuration every command reads by default (status, report,
# rescan, accept-release in "docker compose exec" find /state with it).
install -m 0644 -o 0 -g 0 "$src/integrityd.conf" "$out/etc/integrityd/integrityd.conf"
# The state directory and the control socket's (a volume: a new named
# volume starts as a copy of it, owner and mode included). Only the
# daemon's uid: its group is the web server's (GID), which must not read
# or change the findings.
install -d -m 0700 -o "$uid" -g "$gid" "$out/state"
