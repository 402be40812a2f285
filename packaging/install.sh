#!/usr/bin/env bash
# Installs integrityd as a systemd service (as root):
#   packaging/install.sh [--root NEXTCLOUD_ROOT] [--prefix /usr/local] [--dest DIR]
# --dest installs into another root (a package build or a test image) and
# then does not touch the running system.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=/usr/local
dest=
ncroot=/var/www/nextcloud
while [ $# -gt 0 ]; do
	case $1 in
	--prefix) prefix=$2; shift 2 ;;
	--dest) dest=$2; shift 2 ;;
	--root) ncroot=$2; shift 2 ;;
	*) echo "usage: $0 [--root NEXTCLOUD_ROOT] [--prefix DIR] [--dest DIR]" >&2; exit 2 ;;
	esac
done
bin=${BIN:-}
if [ -z "$bin" ]; then
	bin=$(mktemp)
	trap 'rm -f "$bin"' EXIT
	CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/integrityd
fi
install -D -m 0755 "$bin" "$dest$prefix/bin/integrityd"
unit=packaging/systemd/integrityd.service
if [ "$prefix" != /usr/local ]; then
	sed "s#/usr/local/bin/integrityd#$prefix/bin/integrityd#" "$unit" >"${bin}.unit"
	unit="${bin}.unit"
fi
install -D -m 0644 "$unit" "$dest/etc/systemd/system/integrityd.service"
install -D -m 0644 packaging/systemd/integrityd.catalog "$dest/usr/lib/systemd/catalog/integrityd.catalog"
install -D -m 0644 packaging/systemd/90-integrityd-inotify.conf "$dest/etc/sysctl.d/90-integrityd-inotify.conf"
for f in root.crt root.crl; do # Nextcloud's trust anchors, pinned
	[ -e "$dest/etc/integrityd/$f" ] || install -D -m 0644 "packaging/nextcloud/$f" "$dest/etc/integrityd/$f"
done
if [ ! -e "$dest/etc/integrityd/integrityd.env" ]; then
	install -D -m 0644 packaging/systemd/integrityd.env "$dest/etc/integrityd/integrityd.env"
	sed -i "s#^NEXTCLOUD_ROOT=.*#NEXTCLOUD_ROOT=$ncroot#" "$dest/etc/integrityd/integrityd.env"
fi
if [ -z "$dest" ]; then
	sysctl -p /etc/sysctl.d/90-integrityd-inotify.conf >/dev/null || echo "warning: could not apply /etc/sysctl.d/90-integrityd-inotify.conf; raise fs.inotify.max_user_watches by hand" >&2
	journalctl --update-catalog || true
	systemctl daemon-reload
	echo "installed; edit /etc/integrityd/integrityd.env, then: systemctl enable --now integrityd"
fi
