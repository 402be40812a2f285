#!/usr/bin/env bash
# Builds the Debian package integrityd_VERSION_ARCH.deb from this checkout:
#
#   packaging/deb/build.sh [--bin BINARY] [--out DIR]
#
# BINARY defaults to a static build of ./cmd/integrityd (Go on PATH or
# /usr/local/go/bin), stamped with the version; a BINARY given must print
# that version (integrityd --version). VERSION defaults to
# "0.0~gitYYYYMMDD.COMMIT" of HEAD (Debian versions must start with a
# digit; a dirty tree adds "+dirty"); VERSION=... overrides it. DIR
# defaults to the current directory. Needs dpkg-deb and gzip; no root (the
# files are owned by root in the package: dpkg-deb --root-owner-group).
#
# Installs: /usr/bin/integrityd; the units integrityd.service,
# integrityd@.service and the daily-check integrityd-check(@).service/.timer
# in /usr/lib/systemd/system; the journal catalog, sysusers and sysctl
# files; /etc/integrityd/integrityd.conf (a conffile); the man pages
# integrityd(8) and integrityd.conf(5); the drop-ins, alerting rules and
# dashboard in /usr/share/integrityd. Its maintainer scripts create the
# user (systemd-sysusers), update the catalog and reload systemd; nothing
# is enabled (root must be set first); purge removes /var/lib/integrityd.
set -euo pipefail
prog=${0##*/}
die() { echo "$prog: $*" >&2; exit 1; }
# --bin and --out are the caller's paths: made absolute before the cd to
# the checkout.
abs() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
bin= out=$PWD
while [ $# -gt 0 ]; do
	case $1 in
	--bin) bin=$(abs "$2"); shift 2 ;;
	--out) out=$(abs "$2"); shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
	*) die "unknown option $1 (see $0 --help)" ;;
	esac
done
for c in dpkg-deb gzip; do command -v $c >/dev/null || die "$c is not installed"; done
cd "$(dirname "$0")/../.."

if [ -z "${VERSION:-}" ]; then
	if git rev-parse --git-dir >/dev/null 2>&1; then
		VERSION=0.0~git$(git log -1 --format=%cd --date=format:%Y%m%d).$(git rev-parse --short=12 HEAD)
		git diff --quiet HEAD 2>/dev/null || VERSION=$VERSION+dirty
	else
		VERSION=0.0~unknown
	fi
fi
[[ $VERSION =~ ^[0-9][A-Za-z0-9.+~-]*$ ]] || die "VERSION=$VERSION is not a Debian version (a digit first, then letters, digits, . + ~ -)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$bin" ]; then
	gocmd=$(command -v go || echo /usr/local/go/bin/go)
	[ -x "$gocmd" ] || die "go: command not found; install Go or give --bin PATH"
	CGO_ENABLED=0 "$gocmd" build -trimpath -ldflags "-X main.version=$VERSION" -o "$tmp/integrityd" ./cmd/integrityd
	bin=$tmp/integrityd
fi
[ -x "$bin" ] || die "--bin $bin: not an executable file"
got=$("$bin" --version | sed -n 1p)
[ "$got" = "integrityd $VERSION" ] || die "--bin $bin says \"$got\", not \"integrityd $VERSION\": build it with -ldflags \"-X main.version=$VERSION\" (or leave out --bin)"
arch=$("$bin" version | awk '$1 ~ /^go/ {split($2, p, "/"); print p[2]}')
case $arch in amd64 | arm64 | i386 | armhf | ppc64el | s390x | riscv64) ;; 386) arch=i386 ;; arm) arch=armhf ;; ppc64le) arch=ppc64el ;; *) die "$bin: unknown architecture ${arch:-(none)}" ;; esac

root=$tmp/root
install -D -m 0755 "$bin" "$root/usr/bin/integrityd"
for u in integrityd.service integrityd@.service integrityd-check.service integrityd-check@.service integrityd-check.timer integrityd-check@.timer; do
	install -d "$root/usr/lib/systemd/system"
	sed 's#/usr/local/bin/integrityd#/usr/bin/integrityd#g' "packaging/systemd/$u" >"$root/usr/lib/systemd/system/$u"
	chmod 0644 "$root/usr/lib/systemd/system/$u"
done
install -D -m 0644 packaging/systemd/integrityd.catalog "$root/usr/lib/systemd/catalog/integrityd.catalog"
install -D -m 0644 packaging/systemd/integrityd.sysusers "$root/usr/lib/sysusers.d/integrityd.conf"
install -D -m 0644 packaging/systemd/90-integrityd-inotify.conf "$root/usr/lib/sysctl.d/90-integrityd-inotify.conf"
install -D -m 0644 packaging/systemd/integrityd.conf "$root/etc/integrityd/integrityd.conf"
for p in integrityd.8:man8 integrityd.conf.5:man5; do
	install -d "$root/usr/share/man/${p#*:}"
	gzip -9n <"packaging/man/${p%:*}" >"$root/usr/share/man/${p#*:}/${p%:*}.gz"
done
share=$root/usr/share/integrityd
for f in packaging/systemd/drop-ins/*.conf; do
	sed 's#/usr/local/bin/integrityd#/usr/bin/integrityd#g' "$f" >"$tmp/dropin"
	install -D -m 0644 "$tmp/dropin" "$share/drop-ins/${f##*/}"
done
install -D -m 0644 packaging/prometheus/integrityd.rules.yml "$share/prometheus/integrityd.rules.yml"
install -D -m 0644 packaging/grafana/integrityd.json "$share/grafana/integrityd.json"
doc=$root/usr/share/doc/integrityd
install -D -m 0644 README.md "$doc/README.md"
install -D -m 0644 docs/operations.md "$doc/operations.md"
gzip -9n <CHANGELOG.md >"$tmp/changelog.gz" && install -m 0644 "$tmp/changelog.gz" "$doc/changelog.gz"
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: integrityd"
	echo
	echo "Files: *"
	echo "License: AGPL-3.0-or-later"
	echo " On Debian systems the full text is in this file's"
	echo " /usr/share/doc/integrityd/LICENSE."
} >"$doc/copyright"
install -m 0644 LICENSE "$doc/LICENSE"

install -d "$root/DEBIAN"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat >"$root/DEBIAN/control" <<CONTROL
Package: integrityd
Version: $VERSION
Architecture: $arch
Maintainer: integrityd developers <integrityd@localhost>
Installed-Size: $size
Section: admin
Priority: optional
Depends: systemd (>= 247)
Homepage: https://docs.nextcloud.com/server/latest/admin_manual/issues/code_signing.html
Description: continuous Nextcloud code integrity check
 integrityd checks a Nextcloud installation against its code signatures
 (the signature.json of core and of every app), as Nextcloud's own
 integrity check does and with the same results, but continuously: it
 watches the install and rechecks every file that changes, and alerts
 through the journal. Also one-shot checks (occ integrity:check-core and
 check-app), signing, a daily-check timer, Prometheus metrics.
CONTROL
echo /etc/integrityd/integrityd.conf >"$root/DEBIAN/conffiles"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"

mkdir -p "$out"
deb=$out/integrityd_${VERSION}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
