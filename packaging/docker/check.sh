#!/usr/bin/env bash
# Checks packaging/docker without a container engine (none runs on the CI
# machines: docker there is only the client): the Dockerfile's shape (a Go
# build stage, an empty final stage, a fixed non-root USER, a HEALTHCHECK
# through integrityd status, nothing fetched by ADD), compose.yaml's
# hardening (read-only code volume, read_only, cap_drop ALL), and that the
# Dockerfile's own go build command, run here, gives a static binary that
# runs on an empty root (no libc, no /etc); as root, on a root laid out as
# the image's (packaging/docker/rootfs.sh), as the image's uid, the daemon
# runs as the image's CMD and report, rescan and accept-release work beside
# it with no flag, as through "docker compose exec". When a Docker engine answers,
# it also builds the image. Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
df=packaging/docker/Dockerfile
compose=packaging/docker/compose.yaml
fail() { echo "FAIL docker check: $*" >&2; exit 1; }
n=0
ok() { n=$((n + 1)); }

# Dockerfile instructions, one per line (continuations joined).
ins=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$df" | grep -v '^[[:space:]]*#' | grep -v '^[[:space:]]*$')
froms=$(echo "$ins" | grep -i '^FROM ')
[ "$(echo "$froms" | wc -l)" = 2 ] || fail "want two stages (build, final), got: $froms"; ok
first=$(head -1 <<<"$froms")
last=$(tail -1 <<<"$froms")
# (here-strings: with pipefail, grep -q closing a pipe early can fail a
# "head | grep -q" pipeline at random)
grep -Eq '^FROM golang:1\.26(\.[0-9]+)?( |-).*AS build$|^FROM golang:1\.26 AS build$' <<<"$first" || fail "first stage is not golang:1.26 AS build: $first"; ok
grep -Eq '^FROM (scratch|gcr\.io/distroless/static[^ ]*)$' <<<"$last" || fail "final stage is not scratch or distroless static: $last"; ok
final=$(echo "$ins" | sed -n '/^FROM scratch\|^FROM gcr.io\/distroless/,$p')
user=$(echo "$final" | sed -n 's/^USER //p' | tail -1)
[ -n "$user" ] || fail "the final stage sets no USER (it would run as root)"; ok
uid=${user%%:*}
if [[ $uid == '${UID}' ]]; then
	uid=$(echo "$final" | sed -n 's/^ARG UID=//p' | tail -1)
fi
gid=${user#*:}
if [[ $gid == '${GID}' ]]; then
	gid=$(echo "$final" | sed -n 's/^ARG GID=//p' | tail -1)
fi
[[ $uid =~ ^[0-9]+$ ]] || fail "USER $user: want a numeric uid (an empty image has no /etc/passwd)"; ok
[ "$uid" != 0 ] || fail "USER $user is root"; ok
[ "$uid" != 33 ] && [ "$uid" != 82 ] || fail "USER $user is the web server's uid (it could signal the daemon and write its state)"; ok
echo "$ins" | grep -qi '^ADD ' && fail "ADD is used (remote URLs and archives unpacked implicitly): use COPY"; ok
echo "$ins" | grep -Eiq '(curl|wget) ' && fail "the build downloads something by itself"; ok
hc=$(echo "$final" | grep '^HEALTHCHECK ' || true)
[ -n "$hc" ] || fail "no HEALTHCHECK in the final stage"; ok
echo "$hc" | grep -q 'CMD \["/integrityd", *"status", *"--health"\]' || fail "HEALTHCHECK is not the exec form of integrityd status --health: $hc"; ok
echo "$final" | grep -q '^VOLUME \["/state"\]' || fail "no VOLUME /state (state must not go to the read-only root)"; ok
# The image's configuration (/etc/integrityd/integrityd.conf, read by every
# command): JSON logs, state and control socket in /state.
conf=packaging/docker/integrityd.conf
grep -q '^log_format = json$' "$conf" || fail "the daemon does not log JSON"; ok
grep -q '^state_dir = /state$' "$conf" || fail "the daemon's state is not in /state"; ok
grep -q '^control_socket = /state/' "$conf" || fail "the control socket is not in the /state volume"; ok
build=$(echo "$ins" | sed -n 's/^RUN \(CGO_ENABLED=0 go build .*\)$/\1/p')
[ -n "$build" ] || fail "no RUN CGO_ENABLED=0 go build in the build stage"; ok
echo "$build" | grep -q -- '-trimpath' || fail "go build without -trimpath: $build"; ok

# compose.yaml: the integrityd service's hardening (text checks: no YAML
# library is assumed).
svc=$(sed -n '/^  integrityd:/,/^  [a-z]/p' "$compose")
echo "$svc" | grep -q 'html:/var/www/html:ro' || fail "compose: the code volume is not mounted read-only at /var/www/html"; ok
echo "$svc" | grep -q 'read_only: true' || fail "compose: no read_only: true"; ok
echo "$svc" | grep -q 'cap_drop: \[ALL\]' || fail "compose: no cap_drop: [ALL]"; ok
echo "$svc" | grep -q 'no-new-privileges:true' || fail "compose: no no-new-privileges"; ok
echo "$svc" | grep -q 'state:/state' || fail "compose: no state volume"; ok
grep -q '^      - html:/var/www/html$' "$compose" || fail "compose: the nextcloud service does not use the html volume"; ok
if command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
	python3 -c '
import sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
s = c["services"]["integrityd"]
assert s["read_only"] is True and s["cap_drop"] == ["ALL"], s
assert "html:/var/www/html:ro" in s["volumes"], s["volumes"]
assert set(c["volumes"]) >= {"html", "state"}, c["volumes"]
' "$compose" || fail "compose.yaml does not parse as wanted"
	ok
fi

# The Dockerfile's own build command, here, on a build context holding only
# what the build stage COPYs (a file the build needs and the Dockerfile
# leaves out fails here as it would in docker build): a static binary.
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ctx=$out/src
mkdir -p "$ctx"
buildstage=$(echo "$ins" | sed -n '1,/^FROM scratch\|^FROM gcr.io\/distroless/p')
while read -r -a words; do
	[ "${words[0]}" = COPY ] || continue
	case ${words[1]} in --from=*) continue ;; esac
	dst=${words[${#words[@]} - 1]}
	for src in "${words[@]:1:${#words[@]}-2}"; do
		[ -e "$src" ] || fail "COPY $src: not in the checkout"
		case $dst in */) mkdir -p "$ctx/$dst"; cp -R "$src" "$ctx/$dst" ;; *) mkdir -p "$(dirname "$ctx/$dst")"; cp -R "$src" "$ctx/$dst" ;; esac
	done
done <<<"$buildstage"
ok
cmd=${build//\/out\/integrityd/$out/integrityd}
echo "== (cd <the COPYed context> && $cmd)"
(cd "$ctx" && VERSION=0.0.0-check sh -c "$cmd") || fail "the Dockerfile's go build failed on the context it COPYs"
ok
v=$("$out/integrityd" --version | sed -n 1p) # sed reads it all: head -1 could SIGPIPE the binary (exit 141 under pipefail)
[ "$v" = "integrityd 0.0.0-check" ] || fail "the Dockerfile's build does not stamp --build-arg VERSION: --version says $v"; ok
desc=$(file -b "$out/integrityd")
echo "   $desc"
echo "$desc" | grep -q 'statically linked' || fail "not statically linked: $desc"; ok
if ldd "$out/integrityd" >/dev/null 2>&1; then fail "ldd finds shared libraries: $(ldd "$out/integrityd")"; fi; ok
# It runs on an empty root laid out as the image's (rootfs.sh, the
# Dockerfile's own), as the image's uid and gid (no /etc/passwd, no /tmp,
# no libc): check-config with the image's configuration on a demo install,
# then the HEALTHCHECK's status.
root=$out/root
BIN=$out/integrityd packaging/docker/rootfs.sh "$root" "$uid" "$gid"
"$out/integrityd" demo --build-only "$root/var/www/html" >/dev/null
chmod -R g+rX "$root/var/www/html"
chgrp -R "$gid" "$root/var/www/html"
if command -v unshare >/dev/null && [ "$(id -u)" = 0 ]; then
	unshare --mount --root "$root" --setuid "$uid" --setgid "$gid" /integrityd check-config >/dev/null ||
		fail "the binary does not run on an empty root as uid $uid with the image's configuration"
	rc=0
	unshare --mount --root "$root" --setuid "$uid" --setgid "$gid" /integrityd status --health >/dev/null 2>&1 || rc=$?
	[ "$rc" = 3 ] || fail "the HEALTHCHECK command (integrityd status --health) exits $rc with no daemon, want 3 (unhealthy)"
	ok
	# The daemon as the image's CMD runs it, then what "docker compose
	# exec integrityd /integrityd ..." runs beside it, with no flag: the
	# state lock in /state, the control socket in /state.
	in_image() { unshare --mount --root "$root" --setuid "$uid" --setgid "$gid" /integrityd "$@"; }
	(exec unshare --mount --root "$root" --setuid "$uid" --setgid "$gid" /integrityd run --config /etc/integrityd/integrityd.conf 2>"$out/daemon.log") &
	dpid=$! # integrityd itself (exec, and unshare without --fork execs too)
	trap 'kill "$dpid" 2>/dev/null || true; rm -rf "$out"' EXIT
	for _ in $(seq 300); do
		rc=0
		in_image status --health >/dev/null 2>&1 || rc=$?
		[ "$rc" = 0 ] && break
		kill -0 "$dpid" 2>/dev/null || fail "the daemon exited as the image runs it: $(tail -3 "$out/daemon.log")"
		sleep 0.1
	done
	[ "$rc" = 0 ] || { kill "$dpid"; fail "the daemon never got healthy: $(tail -3 "$out/daemon.log")"; }
	for c in report rescan; do
		rc=0
		msg=$(in_image $c 2>&1) || rc=$?
		[ "$rc" -le 1 ] || fail "integrityd $c in the image exits $rc: $msg"
	done
	# accept-release reaches the daemon on its socket (nothing to accept
	# on the demo: exit 2 with the daemon's answer).
	msg=$(in_image accept-release core 2>&1) || true
	case $msg in *"on /state/control.sock): nothing to accept"*) ;; *) fail "integrityd accept-release in the image did not reach the daemon: $msg" ;; esac
	kill "$dpid"
	wait "$dpid" 2>/dev/null || true
	ok
fi

if docker info >/dev/null 2>&1; then
	docker build -q -f "$df" -t integrityd-check . || fail "docker build"
	ok
	engine="built with docker"
else
	engine="no container engine here (docker is only the client): image not built"
fi
echo "$n passed, 0 failed: docker packaging checked; $engine"
