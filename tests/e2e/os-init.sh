#!/bin/sh
# /sbin/init of the e2e OS: report what booted on the serial console, run the action the
# host put on the control disk (/dev/vdb, ext4, read-only), power off.
export PATH=/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs tmpfs /tmp
o=
for a in $(cat /proc/cmdline); do
    case $a in ostree=*) o=${a#ostree=} ;; esac
done
deploy=$(basename "$(readlink -f "/sysroot$o")")
if touch /usr/.e2e-write 2>/dev/null; then usr=rw; rm -f /usr/.e2e-write; else usr=ro; fi
boots=$(( $(cat /var/e2e-boots 2>/dev/null || echo 0) + 1 ))
echo $boots >/var/e2e-boots
booted=no
[ -e /run/ostree-booted ] && booted=yes
etc=$(cat /etc/e2e.conf 2>/dev/null)
local=absent
[ -e /etc/e2e-local ] && local=present
echo "E2E-BOOTED version=$(cat /usr/lib/e2e-version) deploy=$deploy usr=$usr var-boots=$boots run-ostree-booted=$booted etc=$etc etc-local=$local"
echo "E2E-CMDLINE $(cat /proc/cmdline)"
export GRUB2_PREPARE_ROOT_CACHE='set root=(hd0,msdos1)' GRUB2_BOOT_DEVICE_ID=e2e
mkdir -p /mnt
if mount -t ext4 -o ro /dev/vdb /mnt 2>/dev/null && [ -f /mnt/action.sh ]; then
    . /mnt/action.sh
fi
# What ostree-finalize-staged.service does at shutdown: write out a staged deployment.
if [ -e /run/ostree/staged-deployment ]; then
    ostree admin finalize-staged
    echo "E2E-FINALIZE-STAGED rc=$?"
fi
echo "E2E-POWEROFF"
sync
poweroff -f
