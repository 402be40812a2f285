#!/usr/bin/env bash
# End-to-end test of the packaged service under a real systemd and journald,
# the way an admin uses it (issue 12's "Done when"):
#
# Boots the host's systemd as PID 1 in new pid/mount/uts/ipc/cgroup
# namespaces over a throwaway overlay of /; installs integrityd with
# packaging/install.sh --bin (the main install with a node_exporter textfile
# directory, and two integrityd@ instances on two more trees); checks
# check-config right after the install, the units (systemd-analyze verify
# and security); starts integrityd.service, integrityd@a and integrityd@b;
# scrapes metrics over the Unix sockets (curl --unix-socket) and parses the
# textfile; tampers with files and reads the one-line alerts with
# journalctl -u UNIT -o cat (and the fields with -o json); runs status,
# report and rescan as a user of group integrityd (and is refused as a user
# outside it); refuses a second daemon on the same state directory; checks
# that systemctl reload refuses an invalid configuration (the reason in
# systemctl status), names restart-only keys and applies the others in
# the same process; that a configuration error fails the unit with one
# journal line and no restart (NRestarts=0, exit 78); that TCP metrics
# without their drop-in leave the unit checking and make check-config
# warn; stops; uninstalls, then purges. Removes
# every namespace, mount, cgroup and staging file it made (and fails if any
# is left). Runs from a checkout anywhere, /tmp included: the inner side
# sees only a staging copy under /srv. Needs root. Prints SKIP and why when
# this machine cannot do it; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/../.."

skip() { echo "SKIP systemd end-to-end test: $*"; exit 0; }
fail() { echo "FAIL systemd end-to-end test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
[ -x /lib/systemd/systemd ] || skip "/lib/systemd/systemd is not installed"
for c in unshare nsenter systemd-analyze journalctl python3 curl runuser useradd; do
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

t0=$SECONDS
echo "== build, three demo installs and packaging staged in $work"
if [ -n "${INTEGRITYD_BIN:-}" ]; then
	cp "$INTEGRITYD_BIN" "$work/integrityd" # CI's build (.ci/run)
else
	CGO_ENABLED=0 go build -trimpath -o "$work/integrityd" ./cmd/integrityd
fi
for t in nc a b d; do "$work/integrityd" demo --build-only "$work/$t" >/dev/null; done
cp -R -p packaging "$stage"
if command -v dpkg-deb >/dev/null; then
	# Its own build: the binary is stamped with the package's version.
	deb=$(PATH=$PATH:/usr/local/go/bin packaging/deb/build.sh --out "$work") || fail "packaging/deb/build.sh failed"
	echo "    built $(basename "$deb")"
else
	deb=
	echo "    dpkg-deb is not installed: the .deb steps are skipped"
fi
BIN=/usr/local/bin/integrityd

echo "== install.sh builds with sudo's PATH (no Go on it) into a staging root"
gobin=$(command -v go || echo /usr/local/go/bin/go)
if [ "$(dirname "$gobin")" = /usr/local/go/bin ]; then
	out=$(env -i HOME="$HOME" PATH=/usr/sbin:/usr/bin:/sbin:/bin ${GOFLAGS:+GOFLAGS=$GOFLAGS} packaging/install.sh --dest "$work/dest" 2>&1) ||
		fail "install.sh without Go on PATH: $out"
	echo "$out" | grep -q "^== building ./cmd/integrityd with /usr/local/go/bin/go" || fail "install.sh did not say it builds with /usr/local/go/bin/go: $out"
	echo "$out" | grep -q "^   built in [0-9]* s" || fail "install.sh showed no build progress: $out"
	"$work/dest/usr/local/bin/integrityd" -h >/dev/null 2>&1 || [ $? -le 2 ] || fail "the binary install.sh built does not run"
	echo "    $(echo "$out" | grep -c '^   [a-z]') progress lines; $(echo "$out" | grep '^   built in')"
	rm -rf "$work/dest"
else
	echo "    skipped: go is $gobin, not /usr/local/go/bin/go (the place install.sh must find without PATH)"
fi

echo "== security score (offline)"
for u in integrityd.service integrityd@.service; do
	score=$(systemd-analyze security --offline=yes "$stage/systemd/$u" 2>&1 | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
	[ -n "$score" ] || fail "systemd-analyze security printed no score for $u"
	echo "systemd-analyze security --offline=yes $u: $score"
	python3 -c "import sys; sys.exit(0 if float('$score') <= 1.5 else 1)" || fail "$u: exposure $score > 1.5"
done

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

# Helpers. eventually CMD...: until CMD succeeds (10 s). journal UNIT
# ARGS...: its entries. as USER CMD...: run as USER, outputs kept.
eventually() {
	for _ in $(seq 100); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
	return 1
}
journal() { local u=$1; shift; $E journalctl -u "$u" --no-pager "$@"; }
has_line() { journal "$1" -o cat | grep -qxF -- "$2"; }
wait_line() { # wait_line UNIT LINE: until journalctl -u UNIT -o cat has LINE
	eventually has_line "$1" "$2" && { echo "    $1: $2"; return 0; }
	journal "$1" -o cat | tail -8 >&2
	fail "journalctl -u $1 -o cat has no line \"$2\""
}
as() { local u=$1; shift; $E runuser -u "$u" -- "$@"; }
wait_rc() { # wait_rc WANT CMD...: until CMD exits WANT (10 s); the state is saved off the alerting path
	local want=$1 rc; shift
	for _ in $(seq 100); do
		rc=0; "$@" >/dev/null 2>&1 || rc=$?
		[ "$rc" = "$want" ] && return 0
		sleep 0.1
	done
	return 1
}
conf_set() { # conf_set FILE KEY VALUE: replace or add KEY
	$E sh -c 'grep -v "^$2 = " "$1" >"$1.new"; echo "$2 = $3" >>"$1.new"; mv "$1.new" "$1"' sh "$@"
}
scrape() { $E curl -sf --unix-socket "$1" http://localhost/metrics; }
metric() { # metric TEXT NAME{LABELS}: its value (a line of the exposition, its root label left out)
	printf '%s\n' "$1" | awk -v n="$2" '{k = ""} !/^#/ {k = $0; sub(/ [^ ]+$/, "", k); gsub(/,?root="[^"]*"/, "", k); sub(/\{,/, "{", k); sub(/\{\}/, "", k)} k == n {print $NF; found=1} END {exit !found}'
}
metric_root() { # metric_root TEXT NAME: the root label of NAME's sample
	printf '%s\n' "$1" | awk -v n="$2" 'index($0, n "{") == 1 && match($0, /root="[^"]*"/) {print substr($0, RSTART+6, RLENGTH-7); exit}'
}

echo "== install (install.sh --bin, the main install, a textfile directory, two instances)"
# node_exporter's textfile directory exists already, owned by root: install.sh
# must let the service write there.
$E install -d -m 0755 /var/lib/prometheus/node-exporter
$E "$stage/install.sh" --bin "$work/integrityd" --root "$work/nc" --textfile-dir /var/lib/prometheus/node-exporter
$E "$stage/install.sh" --bin "$work/integrityd" --instance a --root "$work/a" --textfile-dir /var/lib/prometheus/node-exporter
$E "$stage/install.sh" --bin "$work/integrityd" --instance b --root "$work/b" >/dev/null
$E "$stage/install.sh" --bin "$work/integrityd" --root "$work/nc" --textfile-dir /var/lib/prometheus/node-exporter >/dev/null # again: idempotent
$E getent group integrityd >/dev/null || fail "no group integrityd"
$E $BIN check-config || fail "check-config fails right after install"
$E $BIN check-config --config /etc/integrityd/a.conf || fail "check-config of instance a fails right after install"
[ "$($E grep -c "^metrics_textfile = /var/lib/prometheus/node-exporter/integrityd.prom$" /etc/integrityd/integrityd.conf)" = 1 ] || fail "install.sh --textfile-dir (twice) did not set metrics_textfile once"
$E grep -qx "state_dir = /var/lib/integrityd/a" /etc/integrityd/a.conf || fail "a.conf has no state_dir"
# Each demo install has its own CA: pin it, as the real Nextcloud one would be.
for t in nc a b; do $E install -m 0644 "$work/$t/resources/codesigning/root.crt" "/etc/integrityd/$t-root.crt"; done
conf_set /etc/integrityd/integrityd.conf trust /etc/integrityd/nc-root.crt
conf_set /etc/integrityd/integrityd.conf crl none
conf_set /etc/integrityd/integrityd.conf metrics_listen unix:/run/integrityd/metrics.sock
for t in a b; do
	conf_set /etc/integrityd/$t.conf trust /etc/integrityd/$t-root.crt
	conf_set /etc/integrityd/$t.conf crl none
	conf_set /etc/integrityd/$t.conf metrics_listen unix:/run/integrityd/$t/metrics.sock
done
$E systemd-analyze verify /etc/systemd/system/integrityd.service /etc/systemd/system/integrityd@a.service /etc/systemd/system/integrityd-check.service /etc/systemd/system/integrityd-check.timer /etc/systemd/system/integrityd-check@a.service || fail "systemd-analyze verify"
$E journalctl --list-catalog 90db44e0a320482eb73a78bb4bb5ef96 | grep -q integrityd || fail "catalog not installed"
# Operators: alice is in the group, bob is not.
$E useradd -M -G integrityd alice
$E useradd -M bob

echo "== start integrityd.service, integrityd@a and integrityd@b"
for u in integrityd integrityd@a integrityd@b; do
	$E systemctl start $u || { journal $u | tail -20; fail "start $u failed"; }
	$E systemctl show -p StatusText $u | grep -q "StatusText=watching .* files in 3 scopes; 0 findings" || fail "$u: no STATUS= line"
done
$E systemctl show -p MainPID,User,ActiveState integrityd | tr '\n' ' '; echo
$E sh -c 'ls -ld /var/lib/integrityd /var/lib/integrityd/a /run/integrityd /run/integrityd/a /run/integrityd/*.sock /run/integrityd/a/*.sock' || true

echo "== metrics over the Unix socket and in the textfile"
m=$(scrape /run/integrityd/metrics.sock) || fail "curl --unix-socket /run/integrityd/metrics.sock failed"
[ "$(metric "$m" integrityd_scopes)" = 3 ] || fail "socket: integrityd_scopes is not 3"
[ "$(metric "$m" integrityd_findings_all)" = 0 ] || fail "socket: integrityd_findings_all is not 0"
metric "$m" 'integrityd_findings{kind="INVALID_HASH",scope="core"}' >/dev/null && fail "socket: a zero integrityd_findings series is exported (the gauge holds present findings only)"
[ "$(metric_root "$m" integrityd_scopes)" = "$work/nc" ] || fail "socket: integrityd_scopes has root=\"$(metric_root "$m" integrityd_scopes)\", want $work/nc"
echo "    socket: integrityd_watched_files $(metric "$m" integrityd_watched_files), integrityd_scopes 3"
ma=$(as alice curl -sf --unix-socket /run/integrityd/a/metrics.sock http://localhost/metrics) || fail "alice cannot scrape instance a's socket"
[ "$(metric "$ma" integrityd_scopes)" = 3 ] || fail "instance a: integrityd_scopes is not 3"
if as bob curl -sf --unix-socket /run/integrityd/metrics.sock http://localhost/metrics >/dev/null 2>&1; then
	fail "bob (not in group integrityd) can read the metrics socket"
fi
echo "== operators: status and report as alice (group integrityd); bob refused"
as alice $BIN status >/dev/null || fail "alice: status exit $? on a clean install"
as alice $BIN report >/dev/null || fail "alice: report exit $?"
as alice $BIN status --config /etc/integrityd/a.conf >/dev/null || fail "alice: status of instance a exit $?"
rc=0
out=$(as bob $BIN status 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "bob: status exit $rc, want 2 (permission): $out"
echo "$out" | grep -q "group integrityd" || fail "bob: status error does not name the group: $out"
echo "    bob: exit 2: $out"

echo "== the metrics textfiles (rewritten every 15 s: read after the steps above)"
# Two instances write side by side in node_exporter's directory: each
# series carries its root label, so node_exporter sees no duplicates.
tf=/var/lib/prometheus/node-exporter/integrityd.prom
tfa=/var/lib/prometheus/node-exporter/integrityd-a.prom
eventually $E test -s $tf || fail "no textfile $tf"
eventually $E test -s $tfa || fail "no textfile $tfa"
# node_exporter runs as another user: the files must be world-readable.
check_textfile() { # check_textfile FILE ROOT
	as bob cat "$1" | python3 -c '
import re, sys
root = sys.argv[1]
vals = {}
for line in sys.stdin:
    line = line.strip()
    if not line or line.startswith("#"):
        continue
    name, value = line.rsplit(" ", 1)
    roots = re.findall(r"root=\"([^\"]*)\"", name)
    assert roots == [root], (name, roots, root)
    key = re.sub(r",?root=\"[^\"]*\"", "", name).replace("{,", "{").replace("{}", "")
    vals[key] = float(value)
assert vals.get("integrityd_scopes") == 3, vals.get("integrityd_scopes")
assert vals.get("integrityd_watched_files", 0) > 0
assert vals.get("integrityd_last_full_scan_timestamp_seconds", 0) > 1.6e9
assert vals.get("integrityd_watch_degraded") == 0
assert vals.get("integrityd_findings_all") == 0, vals.get("integrityd_findings_all")
assert not [k for k in vals if k.startswith("integrityd_findings{")], "zero integrityd_findings series"
print("    textfile %s: %d samples, root=%s, integrityd_scopes 3, 0 findings" % (sys.argv[2], len(vals), root))
' "$2" "$1"
}
for f in "$tf $work/nc" "$tfa $work/a"; do
	set -- $f
	for i in $(seq 25); do
		check_textfile "$1" "$2" 2>/dev/null && break
		[ "$i" = 25 ] && { check_textfile "$1" "$2" || fail "textfile $1: wrong or unreadable by other users"; }
		sleep 1
	done
done
# Both files in one node_exporter scrape: no series may repeat.
dups=$($E sh -c "cat $tf $tfa" | grep -v '^#' | awk '{print $1}' | sort | uniq -d)
[ -z "$dups" ] || fail "the two textfiles repeat series: $dups"

echo "== status --all: every instance on the host, as alice"
out=$(as alice $BIN status --all 2>&1) || fail "alice: status --all exit $? with three clean instances: $out"
echo "$out" | sed 's/^/    /'
for n in integrityd integrityd@a integrityd@b; do
	echo "$out" | grep -q "^$n .*running" || fail "status --all: no running line for $n"
done
out=$(as alice $BIN status --all --output json) || fail "alice: status --all --output json exit $?"
printf '%s' "$out" | python3 -c 'import json, sys; v = json.load(sys.stdin); assert len(v) == 3, v' || fail "status --all --output json: not three instances: $out"

echo "== tamper: append to index.php, add core/shell.php; one-line alerts"
$E cp "$work/nc/index.php" "$work/index.php.orig"
$E sh -c 'echo "eval(\$_GET[1]);" >>"$1/index.php"; echo "<?php" >"$1/core/shell.php"' sh "$work/nc"
# who_data is on by default; the hardened unit without the who-data
# drop-in has no CAP_SYS_ADMIN for fanotify: the writer is unknown.
wait_line integrityd "INVALID_HASH core index.php, writer unknown"
wait_line integrityd "EXTRA_FILE core core/shell.php, writer unknown"
entry=$(journal integrityd -o json MESSAGE_ID=90db44e0a320482eb73a78bb4bb5ef96 | tail -1)
echo "$entry" | python3 -c '
import json, sys
e = json.load(sys.stdin)
want = {"MESSAGE": "INVALID_HASH core index.php, writer unknown", "PRIORITY": "4", "INTEGRITY_KIND": "INVALID_HASH",
        "INTEGRITY_SCOPE": "core", "INTEGRITY_PATH": "index.php", "SYSLOG_IDENTIFIER": "integrityd",
        "_SYSTEMD_UNIT": "integrityd.service"}
bad = {k: (e.get(k), v) for k, v in want.items() if e.get(k) != v}
assert not bad, bad
assert len(e.get("INTEGRITY_EXPECTED", "")) == 128 and len(e.get("INTEGRITY_CURRENT", "")) == 128
' || fail "alert fields"
wait_rc 1 as alice $BIN status || fail "alice: status does not exit 1 with findings"
rc=0
report=$(as alice $BIN report --output json) || rc=$?
[ "$rc" = 1 ] || fail "alice: report exit $rc with findings, want 1"
echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert "index.php" in r["core"]["INVALID_HASH"], r
' || fail "alice: report --output json does not list index.php"
$E systemctl status integrityd --no-pager -n 5 | grep -q "INVALID_HASH core index.php\|EXTRA_FILE core core/shell.php" || fail "systemctl status does not show the one-line alert"
# The instances are separate: a change in a is alerted by integrityd@a only.
$E sh -c 'echo "<?php" >"$1/lib/evil.php"' sh "$work/a"
wait_line integrityd@a "EXTRA_FILE core lib/evil.php, writer unknown"
has_line integrityd@b "EXTRA_FILE core lib/evil.php, writer unknown" && fail "integrityd@b alerted a's file"
has_line integrityd "EXTRA_FILE core lib/evil.php, writer unknown" && fail "integrityd alerted a's file"
$E cp "$work/index.php.orig" "$work/nc/index.php"
wait_line integrityd "resolved INVALID_HASH core index.php"

echo "== who-data: with the drop-in, an alert names the process, pid, uid and unit that wrote"
$E install -D -m 0644 "$stage/systemd/drop-ins/who-data.conf" /etc/systemd/system/integrityd@a.service.d/who-data.conf
$E systemctl daemon-reload
$E systemctl restart integrityd@a
eventually sh -c "$E journalctl -u integrityd@a -o cat --no-pager | grep -q 'writers known: fanotify'" || { journal integrityd@a -o cat | tail -5 >&2; fail "integrityd@a with who-data.conf: fanotify not in use"; }
# (as root: the staged tree is below a 0700 directory; uid 0 is what
# the alert must then name)
auid=0
# The writer stays alive a moment after its write: one that exits before
# the daemon reads the event is, honestly, "an exited process (pid N)"
# (docs/operations.md), which a busy machine made of this step once.
$E systemd-run --quiet --wait --unit tamper-helper sh -c 'echo "<?php" >>"$1/lib/base.php"; sleep 2' sh "$work/a"
# The unit has no CAP_SYS_PTRACE, so another user's executable cannot be
# read: the writer is named by its own claim (comm), as such.
who_line() { journal integrityd@a -o cat | grep -qE "^INVALID_HASH core lib/base.php, written by a process calling itself sh \(pid [0-9]+, uid $auid, tamper-helper.service\)\$"; }
eventually who_line || { journal integrityd@a -o cat | tail -5 >&2; fail "no alert naming the writer (a process calling itself sh, uid $auid, tamper-helper.service)"; }
journal integrityd@a -o json MESSAGE_ID=90db44e0a320482eb73a78bb4bb5ef96 | tail -1 | python3 -c '
import json, sys
e = json.load(sys.stdin)
assert e.get("INTEGRITY_COMM") == "sh" and e.get("INTEGRITY_UID") == sys.argv[1] and e.get("INTEGRITY_UNIT") == "tamper-helper.service" and e.get("INTEGRITY_PID", "").isdigit(), e
' "$auid" || fail "who-data journal fields"
echo "    $(journal integrityd@a -o cat | grep 'lib/base.php, written by' | tail -1)"

echo "== the install's root.crt replaced: alerted (the pinned one is trusted)"
$E cp "$stage/nextcloud/root.crt" "$work/nc/resources/codesigning/root.crt"
eventually sh -c "$E journalctl -u integrityd -o json MESSAGE_ID=699e8238dbf14c65af2eaec7e7833dfa --no-pager | grep -q ." || fail "no trust anchor mismatch entry"
journal integrityd -o json MESSAGE_ID=699e8238dbf14c65af2eaec7e7833dfa | tail -1 | python3 -c '
import json, sys
e = json.load(sys.stdin)
print("    " + e["MESSAGE"], "| PRIORITY =", e["PRIORITY"])
assert e["PRIORITY"] == "3"
' || fail "trust anchor mismatch entry"

echo "== rescan as alice (control socket), reload by systemctl"
out=$(as alice $BIN rescan --output json 2>&1) && fail "alice: rescan exit 0 with findings, want 1: $out"
echo "$out" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert "core/shell.php" in r["core"]["EXTRA_FILE"], r
print("    alice: rescan: exit 1,", "; ".join("%s %s" % (k, " ".join(v)) for k, v in r["core"].items()))
' || fail "alice: rescan output: $out"
rc=0
as alice $BIN rescan --config /etc/integrityd/a.conf >/dev/null 2>&1 || rc=$?
[ "$rc" = 1 ] || fail "alice: rescan of instance a exit $rc, want 1 (lib/evil.php)"
echo "== accept-release: root only, through the control socket"
rc=0; out=$(as alice $BIN accept-release core 2>&1) || rc=$?
[ "$rc" = 2 ] && echo "$out" | grep -q "only root may accept a release" || fail "alice: accept-release exit $rc, want 2 (only root): $out"
rc=0; out=$($E $BIN accept-release core 2>&1) || rc=$?
[ "$rc" = 2 ] && echo "$out" | grep -q "nothing to accept: core has no VERSION_DOWNGRADE" || fail "root: accept-release core exit $rc, want 2 (nothing to accept) from the daemon: $out"
echo "    alice: refused; root: the daemon answers: $out"
$E systemctl reload integrityd
$E systemctl is-active -q integrityd || fail "not active after reload"
eventually sh -c "$E systemctl show -p StatusText integrityd | grep -q '2 findings'" || fail "status after reload: $($E systemctl show -p StatusText integrityd)"

echo "== reload tells the truth: a bad configuration fails it, restart-only keys are named, the rest applied"
pid=$($E systemctl show -p MainPID --value integrityd)
$E sh -c 'cp /etc/integrityd/integrityd.conf /etc/integrityd/integrityd.conf.good; echo "bogus_key = 1" >>/etc/integrityd/integrityd.conf'
$E systemctl reload integrityd 2>/dev/null && fail "systemctl reload integrityd returned 0 on an invalid configuration"
$E systemctl is-active -q integrityd || fail "a refused reload stopped integrityd"
[ "$($E systemctl show -p MainPID --value integrityd)" = "$pid" ] || fail "a refused reload restarted integrityd"
$E systemctl status integrityd --no-pager -n 10 | grep -q "integrityd.conf:[0-9]*: .*bogus_key" || fail "systemctl status does not give the reason the reload failed: $($E systemctl status integrityd --no-pager -n 10)"
journal integrityd -o cat | grep -q "integrityd.conf:[0-9]*: .*bogus_key" || fail "journalctl -o cat does not give the reason the reload failed"
echo "    refused: $(journal integrityd -o cat | grep -m1 'bogus_key')"
$E mv /etc/integrityd/integrityd.conf.good /etc/integrityd/integrityd.conf
# log_format is read once per process: named, not applied. metrics_listen
# is applied: the checks start again on the new socket in the same process.
conf_set /etc/integrityd/integrityd.conf log_format json
conf_set /etc/integrityd/integrityd.conf metrics_listen unix:/run/integrityd/metrics-reloaded.sock
$E systemctl reload integrityd || fail "systemctl reload integrityd failed on a valid configuration"
wait_line integrityd "SIGHUP: these settings change only when integrityd is restarted (systemctl restart): log_format"
wait_line integrityd "SIGHUP: configuration reloaded; starting the checks again to apply metrics_listen"
eventually scrape /run/integrityd/metrics-reloaded.sock || fail "the reloaded metrics_listen is not served"
[ "$($E systemctl show -p MainPID --value integrityd)" = "$pid" ] || fail "the reload started a new process"
$E sed -i '/^log_format = /d' /etc/integrityd/integrityd.conf
conf_set /etc/integrityd/integrityd.conf metrics_listen unix:/run/integrityd/metrics.sock
$E systemctl reload integrityd || fail "systemctl reload integrityd (back to the first metrics socket)"
eventually scrape /run/integrityd/metrics.sock || fail "metrics.sock not served again after the reload"
eventually sh -c "$E systemctl show -p StatusText integrityd | grep -q '2 findings'" || fail "status after the reloads: $($E systemctl show -p StatusText integrityd)"

echo "== a second daemon on the same state directory is refused"
pid=$($E systemctl show -p MainPID --value integrityd)
rc=0
# As the service runs: user integrityd with CAP_DAC_READ_SEARCH (the staging
# directory is 0700 root).
out=$($E timeout 30 setpriv --reuid integrityd --regid integrityd --init-groups \
	--inh-caps +dac_read_search --ambient-caps +dac_read_search $BIN run --config /etc/integrityd/integrityd.conf --log-format console 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "second daemon: exit $rc, want 2: $out"
echo "$out" | grep -q "in use by another integrityd (pid $pid)" || fail "second daemon: no clear error naming pid $pid: $out"
echo "    $(echo "$out" | grep -m1 "in use")"
scrape /run/integrityd/metrics.sock >/dev/null || fail "the refused daemon broke the running one's metrics socket"
rc=0
as alice $BIN status >/dev/null || rc=$?
[ "$rc" = 1 ] || fail "status after the refused second daemon: not 1 (running, findings)"

echo "== a configuration error stops the unit, no restart loop"
$E sh -c 'echo "bogus_key = 1" >>/etc/integrityd/b.conf'
$E systemctl restart integrityd@b && fail "integrityd@b started with a bad configuration"
sleep 6 # past RestartSec=5s: a restart would have happened by now
show=$($E systemctl show -p NRestarts,ActiveState,Result,ExecMainStatus,ExecMainPID integrityd@b)
echo "    $(echo $show)"
echo "$show" | grep -qx NRestarts=0 || fail "integrityd@b restarted: $show"
echo "$show" | grep -qx ActiveState=failed || fail "integrityd@b not failed: $show"
echo "$show" | grep -qx ExecMainStatus=78 || fail "integrityd@b: exit status not 78 (EX_CONFIG): $show"
mpid=$(echo "$show" | sed -n 's/^ExecMainPID=//p')
lines=$(journal integrityd@b -o cat _PID="$mpid")
echo "    journal: $lines"
[ "$(printf '%s\n' "$lines" | grep -c .)" = 1 ] || fail "want one journal line from the failed start, got: $lines"
echo "$lines" | grep -q "/etc/integrityd/b.conf:[0-9]*: .*bogus_key" || fail "the line does not name the file, line and key: $lines"
$E systemctl is-active -q integrityd@a || fail "integrityd@a is not running"

echo "== metrics over TCP: unreachable in the hardened unit, reachable with the drop-in"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
$E sed -i '/^bogus_key = /d' /etc/integrityd/b.conf
conf_set /etc/integrityd/b.conf metrics_listen 127.0.0.1:$port
# The hardened unit allows AF_UNIX only: a TCP listener cannot even be
# made. That is an error entry and a retry; the daemon goes on checking.
$E systemctl restart integrityd@b || fail "integrityd@b did not start with unreachable TCP metrics (a metrics failure must not stop the checking)"
mpid=$($E systemctl show -p ExecMainPID --value integrityd@b)
eventually sh -c "$E journalctl -u integrityd@b _PID=$mpid -p err -o cat --no-pager | grep -q 'metrics endpoint cannot start'" || fail "no error entry for the TCP metrics that cannot start"
$E systemctl is-active -q integrityd@b || fail "integrityd@b stopped over its metrics"
$E curl -sf -m 2 http://127.0.0.1:$port/metrics >/dev/null && fail "integrityd@b listens on TCP without the drop-in"
echo "    without the drop-in: active, $(journal integrityd@b -o cat _PID="$mpid" | grep -m1 'metrics endpoint cannot start')"
out=$($E $BIN check-config --config /etc/integrityd/b.conf) || fail "check-config of TCP metrics without the drop-in must pass (with a warning): $out"
echo "$out" | grep -q "^WARNING: *metrics_listen 127.0.0.1:$port is TCP, but in unit integrityd@b.service (systemctl show integrityd@b.service) RestrictAddressFamilies= allows no AF_INET socket" ||
	fail "check-config does not warn that integrityd@b cannot serve TCP metrics: $out"
echo "    check-config: $(echo "$out" | grep -m1 '^WARNING: *metrics_listen' | cut -c1-150)..."
$E "$stage/install.sh" --bin "$work/integrityd" --instance b --metrics-tcp >/dev/null
$E test -f /etc/systemd/system/integrityd@b.service.d/metrics-tcp.conf || fail "install.sh --metrics-tcp installed no drop-in"
$E systemctl restart integrityd@b
out=$($E $BIN check-config --config /etc/integrityd/b.conf) || fail "check-config with the drop-in: $out"
echo "$out" | grep -q "^WARNING: *metrics_listen" && fail "check-config warns with the metrics-tcp drop-in installed: $out"
mb=$($E curl -sf -m 5 http://127.0.0.1:$port/metrics) || fail "TCP metrics unreachable with the drop-in"
[ "$(metric "$mb" integrityd_scopes)" = 3 ] || fail "TCP: integrityd_scopes is not 3"
echo "    127.0.0.1:$port: unreachable without metrics-tcp.conf; integrityd_scopes 3 with it"

echo "== stop integrityd.service: the instances keep their sockets"
$E systemctl stop integrityd
$E systemctl is-active -q integrityd && fail "still active after stop"
stopped() { $E journalctl --sync; has_line integrityd "integrityd stopped"; }
eventually stopped || fail "no clean stop entry: $($E journalctl --no-pager -o short-monotonic -n 25)"
as alice curl -sf --unix-socket /run/integrityd/a/metrics.sock http://localhost/metrics >/dev/null || fail "stopping integrityd removed instance a's socket"
rc=0
as alice $BIN status >/dev/null 2>&1 || rc=$?
[ "$rc" = 3 ] || fail "alice: status of the stopped daemon exit $rc, want 3"

echo "== uninstall keeps the state; --purge removes it"
$E "$stage/install.sh" --uninstall
$E test ! -e $BIN -a ! -e /etc/systemd/system/integrityd@.service -a ! -e /etc/systemd/system/integrityd-check.timer -a ! -e $tf || fail "uninstall left files"
$E systemctl is-active -q integrityd@a && fail "integrityd@a still runs after uninstall"
$E test -d /var/lib/integrityd/a -a -f /etc/integrityd/a.conf || fail "uninstall removed the state or the configuration"
$E "$stage/install.sh" --uninstall --purge >/dev/null
$E test ! -e /var/lib/integrityd -a ! -e /etc/integrityd || fail "--purge left the state or the configuration"
$E getent passwd integrityd >/dev/null && fail "--purge left the user"
# What --textfile-dir granted group integrityd on node_exporter's
# directory (an ACL entry, or the group and g+w) is taken back before the
# group goes: its gid must not stay there, writable.
tperm=$($E stat -c '%g %A' /var/lib/prometheus/node-exporter)
case $tperm in 0\ d????-*) ;; *) fail "--purge left /var/lib/prometheus/node-exporter as $tperm (want group 0, not group-writable)" ;; esac
if $E sh -c 'command -v getfacl' >/dev/null; then
	$E getfacl -cpn /var/lib/prometheus/node-exporter | grep -q '^group:[0-9]' && fail "--purge left an ACL entry of the deleted group on /var/lib/prometheus/node-exporter: $($E getfacl -cpn /var/lib/prometheus/node-exporter)"
fi
if [ -n "$deb" ]; then
	echo "== the Debian package: installed, started, alerting, the daily check, purged"
	# As README says: apt install of the file (dpkg -i where there is no apt).
	if $E sh -c 'command -v apt' >/dev/null; then
		$E env DEBIAN_FRONTEND=noninteractive apt install -y -q "$deb" >/dev/null 2>&1 || fail "apt install $(basename "$deb") failed: $($E env DEBIAN_FRONTEND=noninteractive apt install -y "$deb" 2>&1 | tail -5)"
		purge="apt purge -y -q integrityd"
	else
		$E dpkg -i "$deb" >/dev/null || fail "dpkg -i $(basename "$deb") failed"
		purge="dpkg --purge integrityd"
	fi
	for f in /usr/bin/integrityd /usr/lib/systemd/system/integrityd.service /usr/lib/systemd/system/integrityd@.service \
		/usr/lib/systemd/system/integrityd-check.timer /usr/lib/systemd/catalog/integrityd.catalog \
		/usr/share/man/man8/integrityd.8.gz /usr/share/man/man5/integrityd.conf.5.gz /etc/integrityd/integrityd.conf; do
		$E test -f $f || fail "the package did not install $f"
	done
	$E getent passwd integrityd >/dev/null || fail "the package's postinst created no user integrityd"
	[ "$($E stat -c '%U %a' /var/lib/integrityd)" = "integrityd 750" ] || fail "/var/lib/integrityd after dpkg -i: $($E stat -c '%U %a' /var/lib/integrityd)"
	pkgver=$($E dpkg-query -W -f '${Version}' integrityd)
	# Read whole before grep: grep -q stops at the first line, and the
	# binary, still writing the next, died of SIGPIPE (pipefail).
	v=$($E /usr/bin/integrityd --version)
	grep -qx "integrityd $pkgver" <<<"$v" || fail "integrityd --version does not print the package version $pkgver: $v"
	$E systemctl is-enabled -q integrityd 2>/dev/null && fail "the package enabled integrityd before root is set"
	$E install -m 0644 "$work/d/resources/codesigning/root.crt" /etc/integrityd/d-root.crt
	conf_set /etc/integrityd/integrityd.conf root "$work/d"
	conf_set /etc/integrityd/integrityd.conf trust /etc/integrityd/d-root.crt
	conf_set /etc/integrityd/integrityd.conf crl none
	$E /usr/bin/integrityd check-config >/dev/null || fail "check-config of the packaged configuration"
	$E systemctl enable --now integrityd >/dev/null 2>&1 || { journal integrityd | tail -10; fail "systemctl enable --now integrityd (package)"; }
	$E systemctl show -p StatusText integrityd | grep -q "StatusText=watching .* files in 3 scopes; 0 findings" || fail "package: no STATUS= line"
	$E systemctl show -p ExecMainStartTimestamp,FragmentPath integrityd | grep -Eq "FragmentPath=(/usr)?/lib/systemd/system/integrityd.service" || fail "package: not the packaged unit: $($E systemctl show -p FragmentPath integrityd)"
	$E sh -c 'echo "<?php system(\$_GET[0]);" >>"$1/status.php"' sh "$work/d"
	wait_line integrityd "INVALID_HASH core status.php, writer unknown"
	# The daily check (AIDE's mode): the same finding, the report in its
	# journal, the unit failed (exit 1).
	$E systemctl enable integrityd-check.timer >/dev/null 2>&1 || fail "systemctl enable integrityd-check.timer"
	$E systemctl list-timers --all --no-legend integrityd-check.timer | grep -q integrityd-check.timer || fail "integrityd-check.timer is not listed by systemctl list-timers"
	$E systemctl start integrityd-check.service && fail "integrityd-check.service succeeded with a finding (want failed, exit 1)"
	[ "$($E systemctl show -p ExecMainStatus --value integrityd-check.service)" = 1 ] || fail "integrityd-check.service exit $($E systemctl show -p ExecMainStatus --value integrityd-check.service), want 1"
	eventually has_line integrityd-check.service "		- status.php" || { journal integrityd-check.service -o cat | tail -20 >&2; fail "the daily check's report is not in the journal"; }
	journal integrityd-check.service -o cat | grep -q "^1 findings in 1 of 3 scopes checked: INVALID_HASH 1$" || fail "the daily check's summary line"
	echo "    integrityd-check.service: failed (exit 1), report in the journal: $(journal integrityd-check.service -o cat | grep -c .) lines"
	$E env DEBIAN_FRONTEND=noninteractive $purge >/dev/null 2>&1 || fail "$purge failed"
	$E systemctl is-active -q integrityd && fail "integrityd still runs after $purge"
	for f in /usr/bin/integrityd /usr/lib/systemd/system/integrityd.service /usr/lib/systemd/system/integrityd-check.timer /var/lib/integrityd /etc/integrityd; do
		$E test -e $f && fail "$purge left $f"
	done
	# Debian's policy for system users (README): the user stays.
	$E getent passwd integrityd >/dev/null || fail "$purge removed the user integrityd"
	echo "    $(basename "$deb"): installed, started, alerted, checked daily, purged (${purge%% *})"
fi
echo "PASS systemd end-to-end test ($((SECONDS - t0)) s)"
