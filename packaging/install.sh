#!/usr/bin/env bash
# Installs integrityd as a systemd service, or removes it. As root:
#
#   packaging/install.sh [--root NEXTCLOUD_ROOT] [--bin BINARY]     install or upgrade
#   packaging/install.sh --instance NAME --root DIR                  also an integrityd@NAME instance
#   packaging/install.sh --textfile-dir DIR [--instance NAME]        metrics textfile in DIR
#   packaging/install.sh --metrics-tcp [--instance NAME]             metrics over TCP (drop-in)
#   packaging/install.sh --uninstall [--purge]                       remove (--purge: also config, state, user)
#
# Other options: --prefix DIR (default /usr/local), --dest DIR (install into
# another root, for a package build or an image: no user, no systemctl).
# Without --bin it builds ./cmd/integrityd with Go, found on PATH or in the
# usual places (sudo resets PATH): /usr/local/go/bin, ~/go/bin, ~/sdk/go*/bin
# of root or of $SUDO_USER, /usr/lib/go/bin. GO=/path/to/go picks one.
# Running it again is harmless: existing configuration files are kept.
set -euo pipefail
cd "$(dirname "$0")/.."

prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
step() { echo "== $*"; }
usage() {
	sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0" >&2
	exit 2
}

prefix=/usr/local
dest=
ncroot=
bin=${BIN:-}
instance=
textfile_dir=
metrics_tcp=
uninstall=
purge=
while [ $# -gt 0 ]; do
	case $1 in
	--prefix | --dest | --root | --bin | --instance | --textfile-dir)
		[ $# -ge 2 ] || die "$1 needs a value"
		case $1 in
		--prefix) prefix=$2 ;;
		--dest) dest=$2 ;;
		--root) ncroot=$2 ;;
		--bin) bin=$2 ;;
		--instance) instance=$2 ;;
		--textfile-dir) textfile_dir=$2 ;;
		esac
		shift 2
		;;
	--metrics-tcp) metrics_tcp=1; shift ;;
	--uninstall) uninstall=1; shift ;;
	--purge) purge=1; shift ;;
	-h | --help) usage ;;
	*) echo "$prog: unknown option $1" >&2; usage ;;
	esac
done
[ -z "$purge" ] || [ -n "$uninstall" ] || die "--purge goes with --uninstall"
case $prefix in /*) ;; *) die "--prefix $prefix: not an absolute path" ;; esac
[ -z "$ncroot" ] || case $ncroot in /*) ;; *) die "--root $ncroot: not an absolute path" ;; esac
[ -z "$textfile_dir" ] || case $textfile_dir in /*) ;; *) die "--textfile-dir $textfile_dir: not an absolute path" ;; esac
if [ -n "$instance" ]; then
	[[ $instance =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || die "--instance $instance: use letters, digits, _ and - only"
	[ "$instance" != integrityd ] || die "--instance integrityd would clash with integrityd.conf; pick another name"
fi
if [ -z "$dest" ] && [ "$(id -u)" != 0 ]; then
	die "run as root (sudo $0 ...), or with --dest DIR to install into a staging root"
fi
systemd_running() { [ -z "$dest" ] && [ -d /run/systemd/system ]; }

etc=$dest/etc/integrityd
unitdir=$dest/etc/systemd/system
share=$dest$prefix/share/integrityd
catalog=$dest/usr/lib/systemd/catalog/integrityd.catalog
sysusers=$dest/usr/lib/sysusers.d/integrityd.conf
sysctl=$dest/etc/sysctl.d/90-integrityd-inotify.conf
# The drop-in directory of the unit an option is for.
dropdir=$unitdir/integrityd.service.d
conf=$etc/integrityd.conf
if [ -n "$instance" ]; then
	dropdir=$unitdir/integrityd@$instance.service.d
	conf=$etc/$instance.conf
fi

# conf_value KEY FILE: the value of KEY in a configuration file ("" if unset).
conf_value() {
	sed -n "s/^[[:space:]]*$1[[:space:]]*=[[:space:]]*\"\{0,1\}\([^\"]*\)\"\{0,1\}[[:space:]]*$/\1/p" "$2" 2>/dev/null | tail -1
}

# textfile_dirs: where --textfile-dir may have let group integrityd write:
# the directories the metrics-textfile drop-ins open to the daemon
# (ReadWritePaths=) and those of the configurations' metrics_textfile (a
# plain --uninstall removed the drop-ins, not the configuration).
textfile_dirs() {
	local f tf
	for f in "$unitdir"/integrityd.service.d/metrics-textfile.conf "$unitdir"/integrityd@*.service.d/metrics-textfile.conf; do
		if [ -f "$f" ]; then sed -n 's/^ReadWritePaths=//p' "$f"; fi
	done | tr ' ' '\n'
	for f in "$etc"/*.conf; do
		[ -f "$f" ] || continue
		tf=$(conf_value metrics_textfile "$f")
		if [ -n "$tf" ]; then dirname "$tf"; fi
	done
	return 0
}

# ungrant_textfile_dir DIR: take back what --textfile-dir gave group
# integrityd on DIR (an ACL entry, or the group and its write bit), before
# the group is deleted: its gid would otherwise stay there, writable, for
# whatever group gets that gid next.
ungrant_textfile_dir() {
	local d=$1 gid
	[ -d "$d" ] || return 0
	gid=$(getent group integrityd | cut -d: -f3)
	[ -n "$gid" ] || return 0
	if command -v getfacl >/dev/null && getfacl -cpn "$d" 2>/dev/null | grep -q "^group:$gid:"; then
		setfacl -x "g:$gid" "$d" && echo "   removed group integrityd's ACL entry from $d"
	fi
	if [ "$(stat -c %g "$d")" = "$gid" ]; then
		chgrp 0 "$d" && chmod g-w "$d" && echo "   gave $d back to group root, not group-writable"
	fi
}

if [ -n "$uninstall" ]; then
	tdirs=$(textfile_dirs | sed '/^$/d' | sort -u)
	if systemd_running; then
		step "stopping and disabling integrityd.service and every integrityd@ instance"
		# (systemctl exits 1 when nothing matches)
		units=$(systemctl list-units --all --plain --no-legend 'integrityd.service' 'integrityd@*.service' 'integrityd-check*.timer' 'integrityd-check*.service' 2>/dev/null | awk '{print $1}' || true)
		units="$units $(systemctl list-unit-files --plain --no-legend 'integrityd@*.service' 2>/dev/null | awk '$1 != "integrityd@.service" {print $1}' || true)"
		for u in integrityd.service integrityd-check.timer $units; do
			systemctl disable --now "$u" >/dev/null 2>&1 || true
		done
	fi
	# A textfile left behind would be exported by node_exporter forever.
	for c in "$etc"/*.conf; do
		[ -e "$c" ] || continue
		tf=$(conf_value metrics_textfile "$c")
		[ -n "$tf" ] && [ -f "$dest$tf" ] && { rm -f "$dest$tf"; echo "removed the metrics textfile $tf"; }
	done
	step "removing the installed files"
	rm -f "$dest$prefix/bin/integrityd" "$unitdir/integrityd.service" "$unitdir/integrityd@.service" \
		"$dest$prefix/share/man/man8/integrityd.8" "$dest$prefix/share/man/man5/integrityd.conf.5" \
		"$unitdir"/integrityd-check.service "$unitdir"/integrityd-check@.service "$unitdir"/integrityd-check.timer "$unitdir"/integrityd-check@.timer \
		"$catalog" "$sysusers" "$sysctl"
	for d in "$unitdir"/integrityd.service.d "$unitdir"/integrityd@*.service.d; do
		[ -d "$d" ] || continue
		rm -f "$d/metrics-tcp.conf" "$d/metrics-textfile.conf" "$d/who-data.conf"
		rmdir "$d" 2>/dev/null || echo "kept $d (it holds drop-ins of your own)"
	done
	rm -rf "$share" "$dest/run/integrityd"
	if [ -n "$purge" ]; then
		step "purging the configuration, the state and the user"
		rm -rf "$etc" "$dest/var/lib/integrityd"
		if [ -z "$dest" ]; then
			for d in $tdirs; do ungrant_textfile_dir "$d"; done
			if getent passwd integrityd >/dev/null; then userdel integrityd; fi
			if getent group integrityd >/dev/null; then groupdel integrityd; fi
		fi
	else
		[ -d "$etc" ] && echo "kept $etc (configuration); --purge removes it"
		[ -d "$dest/var/lib/integrityd" ] && echo "kept /var/lib/integrityd (state) and the user integrityd; --purge removes them"
	fi
	if systemd_running; then
		systemctl daemon-reload
		journalctl --update-catalog || true
		systemctl reset-failed 'integrityd.service' 'integrityd@*.service' 2>/dev/null || true
	fi
	echo "integrityd uninstalled"
	exit 0
fi

# find_go prints the path of a go command, or nothing.
find_go() {
	if [ -n "${GO:-}" ]; then
		echo "$GO"
		return
	fi
	command -v go && return
	local homes=("$HOME") h g
	if [ -n "${SUDO_USER:-}" ]; then
		h=$(getent passwd "$SUDO_USER" | cut -d: -f6)
		[ -n "$h" ] && homes+=("$h")
	fi
	for g in /usr/local/go/bin/go "${homes[@]/%//go/bin/go}" "${homes[@]/%//.local/go/bin/go}" /usr/lib/go/bin/go; do
		[ -x "$g" ] && { echo "$g"; return; }
	done
	for h in "${homes[@]}"; do
		for g in "$h"/sdk/go*/bin/go; do
			[ -x "$g" ] && { echo "$g"; return; }
		done
	done
	return 0
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$bin" ]; then
	[ -f go.mod ] && [ -d cmd/integrityd ] || die "no Go checkout at $PWD to build from; give --bin PATH of a built integrityd"
	gocmd=$(find_go)
	[ -n "$gocmd" ] || die "go: command not found (not on PATH, nor in /usr/local/go/bin, ~/go/bin, ~/sdk/go*/bin); install Go, run with GO=/path/to/go, or build first (go build ./cmd/integrityd) and give --bin ./integrityd"
	step "building ./cmd/integrityd with $gocmd ($("$gocmd" env GOVERSION 2>/dev/null || echo "unknown version")); the first build downloads and compiles the dependencies (about a minute), one line per package"
	start=$SECONDS
	# The version integrityd --version prints (VERSION=... overrides it).
	version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || true)}
	version=${version:-devel}
	echo "   version $version"
	if ! CGO_ENABLED=0 "$gocmd" build -v -trimpath -ldflags "-X main.version=$version" -o "$tmp/integrityd" ./cmd/integrityd 2>&1 | sed -u 's/^/   /'; then
		die "go build failed (see above)"
	fi
	echo "   built in $((SECONDS - start)) s"
	bin=$tmp/integrityd
fi
[ -f "$bin" ] && [ -x "$bin" ] || die "--bin $bin: not an executable file"
"$bin" -h >/dev/null 2>&1 || [ $? -le 2 ] || die "--bin $bin: does not run on this machine"
"$bin" --version 2>/dev/null | sed -n '1s/^/   /p' || true

step "creating the user and group integrityd"
install -D -m 0644 packaging/systemd/integrityd.sysusers "$sysusers"
if [ -z "$dest" ]; then
	if ! getent passwd integrityd >/dev/null; then
		if command -v systemd-sysusers >/dev/null; then
			systemd-sysusers "$sysusers"
		else
			getent group integrityd >/dev/null || groupadd --system integrityd
			useradd --system --gid integrityd --no-create-home --home-dir /var/lib/integrityd \
				--shell /usr/sbin/nologin --comment "Nextcloud code integrity daemon" integrityd
		fi
	fi
	getent passwd integrityd >/dev/null || die "could not create the user integrityd"
	echo "   user $(id integrityd)"
fi

step "installing $prefix/bin/integrityd, the units, the catalog, the sysctl drop-in"
if [ "$bin" -ef "$dest$prefix/bin/integrityd" ]; then
	# --bin names the installed binary itself (install(1) would abort with
	# "are the same file"): it is in place already.
	echo "   $prefix/bin/integrityd: already the binary given"
	chmod 0755 "$dest$prefix/bin/integrityd"
else
	install -D -m 0755 "$bin" "$dest$prefix/bin/integrityd"
fi
for u in integrityd.service integrityd@.service integrityd-check.service integrityd-check@.service integrityd-check.timer integrityd-check@.timer; do
	sed "s#/usr/local/bin/integrityd#$prefix/bin/integrityd#" "packaging/systemd/$u" >"$tmp/$u"
	install -D -m 0644 "$tmp/$u" "$unitdir/$u"
done
install -D -m 0644 packaging/systemd/integrityd.catalog "$catalog"
install -D -m 0644 packaging/man/integrityd.8 "$dest$prefix/share/man/man8/integrityd.8"
install -D -m 0644 packaging/man/integrityd.conf.5 "$dest$prefix/share/man/man5/integrityd.conf.5"
install -D -m 0644 packaging/systemd/90-integrityd-inotify.conf "$sysctl"
# For reference, where the admin finds them without the checkout.
install -D -m 0644 packaging/systemd/integrityd.conf "$share/integrityd.conf.example"
install -D -m 0644 packaging/systemd/drop-ins/metrics-tcp.conf "$share/drop-ins/metrics-tcp.conf"
install -D -m 0644 packaging/systemd/drop-ins/metrics-textfile.conf "$share/drop-ins/metrics-textfile.conf"
install -D -m 0644 packaging/systemd/drop-ins/who-data.conf "$share/drop-ins/who-data.conf"

install -d -m 0755 "$etc"
# The state directories as systemd makes them (StateDirectory=), so that
# check-config can tell they are writable before the first start.
if [ -z "$dest" ]; then
	install -d -m 0750 -o integrityd -g integrityd /var/lib/integrityd
	[ -z "$instance" ] || install -d -m 0750 -o integrityd -g integrityd "/var/lib/integrityd/$instance"
fi
# write_conf FILE ROOT [NAME]: a new configuration from the example.
write_conf() {
	local f=$1 root=$2 name=${3:-}
	if [ -z "$name" ]; then
		sed "s#^root = .*#root = $root#" packaging/systemd/integrityd.conf >"$tmp/conf"
	else
		sed -e "s#^root = .*#root = $root#" \
			-e "s#^\#state_dir = .*#state_dir = /var/lib/integrityd/$name#" \
			-e "s#/run/integrityd/#/run/integrityd/$name/#g" \
			-e "s#integrityd\.service#integrityd@$name.service#g" \
			-e "s#/etc/integrityd/integrityd\.conf#/etc/integrityd/$name.conf#g" \
			-e "s#--textfile-dir DIR\"#--textfile-dir DIR --instance $name\"#" \
			-e "s#check-config\$#check-config --config /etc/integrityd/$name.conf#" \
			-e "s#/integrityd\.prom#/integrityd-$name.prom#" \
			packaging/systemd/integrityd.conf >"$tmp/conf"
	fi
	install -m 0644 "$tmp/conf" "$f"
	echo "   wrote $f (root = $root)"
}
if [ ! -e "$etc/integrityd.conf" ]; then
	root=${ncroot:-/var/www/nextcloud}
	[ -n "$instance" ] && root=/var/www/nextcloud
	# An install from before the configuration file: keep its root.
	if [ -f "$etc/integrityd.env" ]; then
		old=$(sed -n 's/^NEXTCLOUD_ROOT=//p' "$etc/integrityd.env")
		[ -n "$old" ] && [ -z "$ncroot" ] && root=$old
	fi
	write_conf "$etc/integrityd.conf" "$root"
else
	echo "   kept $etc/integrityd.conf"
	[ -n "$ncroot" ] && [ -z "$instance" ] && [ "$(conf_value root "$etc/integrityd.conf")" != "$ncroot" ] &&
		echo "   note: it says root = $(conf_value root "$etc/integrityd.conf"), not $ncroot; edit it if you meant to change it"
fi
if [ -f "$etc/integrityd.env" ]; then
	echo "   note: $etc/integrityd.env is no longer read; move its INTEGRITYD_OPTS flags to keys of $etc/integrityd.conf, then delete it"
fi
if [ -n "$instance" ]; then
	if [ ! -e "$conf" ]; then
		[ -n "$ncroot" ] || die "--instance $instance needs --root DIR (its Nextcloud install)"
		write_conf "$conf" "$ncroot" "$instance"
	else
		echo "   kept $conf"
	fi
fi

if [ -n "$metrics_tcp" ]; then
	install -D -m 0644 packaging/systemd/drop-ins/metrics-tcp.conf "$dropdir/metrics-tcp.conf"
	echo "   installed $dropdir/metrics-tcp.conf (network for metrics_listen = HOST:PORT; add your Prometheus server to IPAddressAllow=)"
fi
if [ -n "$textfile_dir" ]; then
	step "metrics textfile in $textfile_dir"
	if [ ! -d "$dest$textfile_dir" ]; then
		install -d -m 0775 -g "$( [ -z "$dest" ] && echo integrityd || echo 0)" "$dest$textfile_dir"
		echo "   created $textfile_dir (group integrityd, mode 0775)"
	elif [ -z "$dest" ] && ! runuser -u integrityd -- test -w "$textfile_dir" 2>/dev/null; then
		if command -v setfacl >/dev/null; then
			setfacl -m g:integrityd:rwx "$textfile_dir"
			echo "   let group integrityd write to $textfile_dir (ACL)"
		else
			chgrp integrityd "$textfile_dir" && chmod g+w "$textfile_dir"
			echo "   let group integrityd write to $textfile_dir (chgrp integrityd, chmod g+w)"
		fi
	fi
	sed "s#^ReadWritePaths=.*#ReadWritePaths=$textfile_dir#" packaging/systemd/drop-ins/metrics-textfile.conf >"$tmp/textfile.conf"
	install -D -m 0644 "$tmp/textfile.conf" "$dropdir/metrics-textfile.conf"
	echo "   installed $dropdir/metrics-textfile.conf (ReadWritePaths=$textfile_dir)"
	file=$textfile_dir/integrityd${instance:+-$instance}.prom
	if [ -z "$(conf_value metrics_textfile "$conf")" ]; then
		printf '\n# Added by install.sh --textfile-dir.\nmetrics_textfile = %s\n' "$file" >>"$conf"
		echo "   set metrics_textfile = $file in $conf"
	elif [ "$(conf_value metrics_textfile "$conf")" != "$file" ]; then
		echo "   note: $conf has metrics_textfile = $(conf_value metrics_textfile "$conf"); it must be in $textfile_dir"
	fi
fi

if [ -n "$dest" ]; then
	echo "installed into $dest"
	exit 0
fi
sysctl -p "$sysctl" >/dev/null 2>&1 || echo "warning: could not apply $sysctl; raise fs.inotify.max_user_watches by hand (sysctl --system)" >&2
if systemd_running; then
	journalctl --update-catalog || echo "warning: journalctl --update-catalog failed; journalctl -x will not explain integrityd's entries" >&2
	systemctl daemon-reload
fi
if "$dest$prefix/bin/integrityd" check-config --config "$conf" >"$tmp/check" 2>&1; then
	echo "   integrityd check-config --config $conf: OK"
else
	echo "   integrityd check-config --config $conf says (fix it before starting):"
	sed 's/^/     /' "$tmp/check"
fi
unit=integrityd.service
[ -n "$instance" ] && unit=integrityd@$instance.service
echo "integrityd installed. Next:"
printf '  %-50s # %s\n' "sudoedit $conf" "root, and what else its comments say" \
	"sudo systemctl enable --now $unit" "start it now and at boot" \
	"sudo usermod -aG integrityd \$USER" "to run integrityd status/report/rescan without sudo"
if systemd_running && systemctl is-active -q "$unit"; then
	printf '  %-50s # %s\n' "sudo systemctl restart $unit" "it runs the binary from before"
fi
