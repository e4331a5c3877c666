#!/bin/busybox sh
# /init of the e2e initramfs: load the disk and filesystem modules, mount the physical root,
# let ostree-prepare-root turn the deployment named by ostree= into /sysroot, switch to it.
# With e2e.install-extlinux=DIR (the e2e's installer boot), install EXTLINUX instead.
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /run /sysroot
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=0755 tmpfs /run
fail() {
    echo "E2E-INITRAMFS-FAILED: $*"
    poweroff -f
}
while read -r m; do
    insmod "/lib/modules/$m" || fail "insmod $m"
done </lib/modules/load-order
root=
extlinux_dir=
for a in $(cat /proc/cmdline); do
    case $a in
    root=*) root=${a#root=} ;;
    e2e.install-extlinux=*) extlinux_dir=${a#e2e.install-extlinux=} ;;
    esac
done
[ -n "$root" ] || fail "no root= on the kernel command line"
i=0
while [ ! -b "$root" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
mount -t ext4 -o rw "$root" /sysroot || fail "mount $root"
if [ -n "$extlinux_dir" ]; then
    # The e2e installer boot (an initramfs with extlinux added): install EXTLINUX onto the
    # image, which only works on a mounted filesystem, then power off.
    if /usr/bin/extlinux --install "/sysroot$extlinux_dir"; then
        umount /sysroot && echo "E2E-EXTLINUX-INSTALLED"
    else
        echo "E2E-EXTLINUX-FAILED"
    fi
    poweroff -f
fi
echo "E2E-INITRAMFS: prepare-root"
/usr/bin/ostree-prepare-root /sysroot || fail "ostree-prepare-root exited $?"
mount --move /run /sysroot/run || fail "move /run"
mount --move /dev /sysroot/dev || fail "move /dev"
umount /sys /proc
exec switch_root /sysroot /sbin/init
