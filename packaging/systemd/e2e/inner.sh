#!/bin/bash
# PID 1 of fresh pid/mount/uts/ipc/cgroup namespaces (started by
# e2e-test.sh, which sets HERE and STAGE): builds a throwaway overlay of the
# host's /, binds the staging dir STAGE (never under /tmp) at the same path
# in it, and execs the host's systemd in it. Adapted from the recipe in
# shared/recipes/systemd-in-namespace.
set -e
B=/run/integrityd-e2e-setup # private tmpfs (this mount namespace only)
mkdir -p $B && mount -t tmpfs -o mode=755 tmpfs $B
mkdir -p $B/upper $B/work $B/root
mount -t overlay overlay -o lowerdir=/,upperdir=$B/upper,workdir=$B/work $B/root
R=$B/root
mount -t proc proc $R/proc
mount --bind /proc/sys $R/proc/sys && mount -o remount,bind,ro $R/proc/sys # host sysctls stay safe
mount -t sysfs -o ro sysfs $R/sys                                          # ro /sys: udev units skip
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup                                  # rooted at our cgroup namespace
mount --rbind /dev $R/dev
mount -t tmpfs -o mode=755 tmpfs $R/run
mount -t tmpfs -o mode=1777 tmpfs $R/tmp
mkdir -p "$R${STAGE:?}" && mount --bind "$STAGE" "$R$STAGE"
# Host enablements make no sense here.
rm -rf $R/etc/systemd/system/multi-user.target.wants $R/etc/systemd/system/getty.target.wants \
	$R/etc/systemd/system/sysinit.target.wants $R/etc/systemd/system/timers.target.wants
for u in systemd-udevd.service systemd-udev-trigger.service systemd-modules-load.service \
	systemd-remount-fs.service getty@tty1.service console-getty.service systemd-timesyncd.service \
	systemd-pstore.service systemd-sysctl.service systemd-binfmt.service; do
	ln -sf /dev/null $R/etc/systemd/system/$u
done
cp "$HERE/e2e.target" $R/etc/systemd/system/e2e.target
hostname integrityd-e2e
cd $R
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
exec env -i container=integrityd-e2e PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd --unit=e2e.target --log-target=console --show-status=no
