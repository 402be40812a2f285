#!/usr/bin/env bash
# End-to-end test of the packaged service under a real systemd and journald.
#
# Boots the host's systemd as PID 1 in new pid/mount/uts/ipc/cgroup
# namespaces over a throwaway overlay of /, installs integrityd with
# packaging/install.sh, checks the unit (systemd-analyze verify and
# security), starts it on a signed demo install, tampers with a file and
# reads the alert back with journalctl -o json (fields and MESSAGE_ID),
# reloads (full rescan), stops, and removes every namespace, mount,
# cgroup and staging file it made (and fails if any is left). Runs from a
# checkout anywhere, /tmp included: the inner side sees only a staging copy
# under /srv. Needs root. Prints SKIP and why when this machine cannot
# do it; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "SKIP systemd end-to-end test: $*"; exit 0; }
fail() { echo "FAIL systemd end-to-end test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
[ -x /lib/systemd/systemd ] || skip "/lib/systemd/systemd is not installed"
for c in unshare nsenter systemd-analyze journalctl python3; do
	command -v $c >/dev/null || skip "$c is not installed"
done
if [ -e /sys/fs/cgroup/unified/cgroup.procs ]; then
	cgbase=/sys/fs/cgroup/unified
elif [ -e /sys/fs/cgroup/cgroup.controllers ]; then
	cgbase=/sys/fs/cgroup
else
	skip "no cgroup v2 hierarchy at /sys/fs/cgroup or /sys/fs/cgroup/unified"
fi

# Everything the namespaced side uses is staged in $work, never read from
# the checkout, which may be anywhere (a clean clone in /tmp, a path with
# spaces): the booted systemd has its own tmpfs on /tmp, and the service has
# PrivateTmp=yes. So $work is under neither /tmp nor /var/tmp, and inner.sh
# binds it at the same path inside (the overlay's lower layer is only /'s
# own filesystem, which need not hold /srv). It holds the binary, the demo
# install and a copy of packaging/ (install.sh, unit, catalog, env file,
# the pinned certificates, the e2e boot files).
mkdir -p /srv
work=$(mktemp -d /srv/integrityd-e2e.XXXXXX)
case $(realpath "$work") in /tmp/* | /var/tmp/*) rmdir "$work"; fail "$work resolves under /tmp or /var/tmp" ;; esac
stage=$work/packaging
HERE=$stage/systemd/e2e
cg=$cgbase/integrityd-e2e-$$
boot_pid=
sd_pid=
sd_ns= # the namespaces systemd runs in, as /proc/PID/ns/* links read
cleanup() {
	set +e
	if [ -n "$sd_pid" ] && kill -0 "$sd_pid" 2>/dev/null; then
		nsenter -t "$sd_pid" -m -p -u -i -C systemctl poweroff --no-block >/dev/null 2>&1
		for _ in $(seq 100); do kill -0 "$sd_pid" 2>/dev/null || break; sleep 0.05; done
		kill -9 "$sd_pid" 2>/dev/null
	fi
	[ -n "$boot_pid" ] && { kill -9 "$boot_pid" 2>/dev/null; wait "$boot_pid" 2>/dev/null; }
	left=
	if [ -d "$cg" ]; then
		# Move stragglers out (they count as left behind), then remove
		# the tree deepest first.
		for p in $(find "$cg" -name cgroup.procs -exec cat {} \; 2>/dev/null); do
			left="$left process($p in $cg)"
			echo "$p" >"$cgbase/cgroup.procs" 2>/dev/null
		done
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
	fi
	rm -rf "$work"
	# Nothing may be left behind: systemd, a process in its cgroup tree or
	# its namespaces, the tree itself, a mount, the staging dir.
	if [ -n "$sd_pid" ]; then
		for _ in $(seq 20); do kill -0 "$sd_pid" 2>/dev/null || break; sleep 0.05; done
		kill -0 "$sd_pid" 2>/dev/null && left="$left systemd(pid $sd_pid)"
	fi
	[ -d "$cg" ] && left="$left cgroup($cg)"
	if [ -n "$sd_ns" ]; then
		for p in /proc/[0-9]*; do
			for n in pid mnt; do
				l=$(readlink "$p/ns/$n" 2>/dev/null) && case " $sd_ns " in *" $l "*) left="$left process(${p#/proc/} in $l)" ;; esac
			done
		done
	fi
	grep -q integrityd-e2e /proc/self/mountinfo && left="$left mount($(grep integrityd-e2e /proc/self/mountinfo | awk '{print $5}' | tr '\n' ' '))"
	[ -e "$work" ] && left="$left staging($work)"
	if [ -n "$left" ]; then
		echo "FAIL systemd end-to-end test: left behind:$left" >&2
		exit 1
	fi
}
trap cleanup EXIT

echo "== build, demo install and packaging staged in $work"
CGO_ENABLED=0 go build -o "$work/integrityd" ./cmd/integrityd
"$work/integrityd" demo --build-only "$work/nc" >/dev/null
cp -R -p packaging "$stage"

echo "== security score (offline)"
score=$(systemd-analyze security --offline=yes "$stage/systemd/integrityd.service" 2>&1 | sed -n 's/.*Overall exposure level for integrityd.service: \([0-9.]*\).*/\1/p')
[ -n "$score" ] || fail "systemd-analyze security printed no score"
echo "systemd-analyze security --offline=yes: $score"
python3 -c "import sys; sys.exit(0 if float('$score') <= 1.5 else 1)" || fail "exposure $score > 1.5"

echo "== boot systemd in namespaces"
mkdir -p "$cg"
log=$work/boot.log
# The subshell moves itself into the new cgroup, then unshares.
(echo $BASHPID >"$cg/cgroup.procs" && exec env HERE="$HERE" STAGE="$work" unshare --pid --fork --mount --uts --ipc --cgroup --propagation private "$HERE/inner.sh") >"$log" 2>&1 </dev/null &
boot_pid=$!
for _ in $(seq 200); do
	sd_pid=$(pgrep -P "$boot_pid" -f /lib/systemd/systemd || true)
	[ -n "$sd_pid" ] && break
	sleep 0.05
done
[ -n "$sd_pid" ] || { cat "$log"; fail "systemd did not start"; }
sd_ns="$(readlink /proc/"$sd_pid"/ns/pid) $(readlink /proc/"$sd_pid"/ns/mnt)"
E="nsenter -t $sd_pid -m -p -u -i -C"
for _ in $(seq 200); do
	state=$($E systemctl is-system-running 2>/dev/null || true)
	case $state in running | degraded) break ;; esac
	sleep 0.05
done
echo "systemd is $state"
case $state in running | degraded) ;; *) cat "$log"; fail "systemd did not boot" ;; esac
$E test -x "$stage/install.sh" -a -x "$work/integrityd" -a -f "$work/nc/index.php" || fail "$work is not visible inside"

echo "== install and verify the unit"
$E env BIN="$work/integrityd" "$stage/install.sh" --root "$work/nc"
# The demo install has its own CA: pin that one instead of Nextcloud's.
$E install -m 0644 "$work/nc/resources/codesigning/root.crt" /etc/integrityd/root.crt
$E sed -i 's#^INTEGRITYD_OPTS=.*#INTEGRITYD_OPTS=--trust /etc/integrityd/root.crt --crl none#' /etc/integrityd/integrityd.env
$E systemd-analyze verify /etc/systemd/system/integrityd.service || fail "systemd-analyze verify"
$E journalctl --list-catalog 90db44e0a320482eb73a78bb4bb5ef96 | grep -q integrityd || fail "catalog not installed"

echo "== start"
$E systemctl start integrityd || { $E journalctl -u integrityd --no-pager | tail -20; fail "start failed"; }
$E systemctl is-active integrityd
$E systemctl show -p Type,MainPID,StatusText,ActiveState,SubState,WatchdogUSec integrityd
$E systemctl show -p StatusText integrityd | grep -q "StatusText=watching .* files in 3 scopes; 0 findings" || fail "no STATUS= line"

journal() { $E journalctl -u integrityd -o json --no-pager "$@"; }
wait_entry() { # wait_entry FIELD=VALUE...: until journalctl finds it
	for _ in $(seq 100); do
		out=$(journal "$@")
		[ -n "$out" ] && { echo "$out"; return 0; }
		sleep 0.1
	done
	journal | tail -5 >&2
	fail "no journal entry with $*"
}

echo "== tamper: append to index.php, add core/shell.php"
$E sh -c 'echo "eval(\$_GET[1]);" >>"$1/index.php"; echo "<?php" >"$1/core/shell.php"' sh "$work/nc"
entry=$(wait_entry MESSAGE_ID=90db44e0a320482eb73a78bb4bb5ef96 | tail -1)
echo "$entry" | python3 -c '
import json, sys
e = json.load(sys.stdin)
want = {"MESSAGE": "integrity check failed", "PRIORITY": "4", "INTEGRITY_KIND": "INVALID_HASH",
        "INTEGRITY_SCOPE": "core", "INTEGRITY_PATH": "index.php", "SYSLOG_IDENTIFIER": "integrityd",
        "_SYSTEMD_UNIT": "integrityd.service"}
for k in sorted(e):
    if k.startswith(("INTEGRITY_", "MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "_SYSTEMD_UNIT")):
        print("   ", k, "=", e[k])
bad = {k: (e.get(k), v) for k, v in want.items() if e.get(k) != v}
assert not bad, bad
assert len(e.get("INTEGRITY_EXPECTED", "")) == 128 and len(e.get("INTEGRITY_CURRENT", "")) == 128
' || fail "alert fields"
wait_entry MESSAGE_ID=207ff942e1af4ca1980adfba3e930bed INTEGRITY_PATH=core/shell.php >/dev/null
echo "EXTRA_FILE alert for core/shell.php found"

echo "== the install's root.crt replaced: alerted (the pinned one is trusted)"
$E cp "$stage/nextcloud/root.crt" "$work/nc/resources/codesigning/root.crt"
wait_entry MESSAGE_ID=699e8238dbf14c65af2eaec7e7833dfa | tail -1 | python3 -c '
import json, sys
e = json.load(sys.stdin)
print("    ", e["MESSAGE"], "| PINNED =", e["PINNED"], "| PRIORITY =", e["PRIORITY"])
assert e["PRIORITY"] == "3"
' || fail "trust anchor mismatch entry"

echo "== reload: full rescan"
$E systemctl reload integrityd
wait_entry MESSAGE_ID=dcc6a7a5693d4a80bbb01b8a05f1c2b2 REASON=requested | tail -1 | python3 -c '
import json, sys
e = json.load(sys.stdin)
print("    full scan:", e["MESSAGE"], "reason", e["REASON"], "findings", e["FINDINGS"])
assert e["FINDINGS"] == "3", e["FINDINGS"]  # index.php, core/shell.php, root.crt
' || fail "rescan entry"
$E systemctl is-active integrityd
$E systemctl show -p StatusText integrityd | grep -q "3 findings" || fail "status after reload"

echo "== stop"
$E systemctl stop integrityd
if $E systemctl is-active integrityd; then fail "still active after stop"; fi
journal MESSAGE="integrityd stopped" | grep -q stopped || fail "no clean stop entry"
echo "PASS systemd end-to-end test"
