#!/usr/bin/env bash
# bench/admin.sh - `ostree admin deploy` of the debootstrap tree (corpus v1, plus a fake kernel
# and initramfs), the real ostree against ours, and the /etc three-way merge of 1000 changed files.
#
# Usage: OSTREE_RS_BIN=/path/to/ours bench/admin.sh [RUNS]        (default 5 runs per op)
#
# Operations (median wall time and peak RSS of RUNS runs, after one untimed warm-up; the runs
# of the two binaries alternate, real then ours, so both see the same load):
#   deploy         first deployment of the OS: hardlink checkout of ~6700 entries, /etc copy,
#                  kernel/initramfs into /boot, BLS entries, boot symlinks, syncfs, swap
#   deploy-merge   a second deployment merging /etc from an unchanged first one
#   deploy-etc1000 the same with 1000 files of the first deployment's /etc changed (each one
#                  must be copied into the new deployment's /etc)
#
# Safety: the real ostree freezes (FIFREEZE) the filesystem of /boot while deploying; here /boot
# is on the machine's root filesystem. Every deploy of both binaries therefore runs in a user
# namespace (`unshare --user --map-root-user`), where FIFREEZE fails with EPERM and ostree falls
# back to syncfs, as ours always does. Deployments stay mutable (OSTREE_SYSROOT_DEBUG=
# mutable-deployments: chattr +i needs the initial namespace too). The tree is committed with
# --owner-uid=0 --owner-gid=0 so that every file is owned by the one mapped user.
#
# Env: OSTREE_REAL_BIN (default /usr/bin/ostree), CORPUS (default /tmp/ostree-bench/corpus),
# WORK (default /tmp/ostree-bench/admin), SYSROOT_FS=tmpfs (run as root: the two sysroots live
# on a tmpfs mounted at $WORK/fs for the run, so the figures show the binaries' own cost without
# ext4's inode allocation, which after many undeploys dominates both; see bench/admin.md;
# SYSROOT_FS=ext4: on a fresh ext4 filesystem with its default journal, made in a file on
# /dev/shm and loop-mounted at $WORK/fs for the run: ext4's own code paths, as a real sysroot
# has them, without the disk's noise).
set -euo pipefail
REAL=${OSTREE_REAL_BIN:-/usr/bin/ostree}
OURS=${OSTREE_RS_BIN:?set OSTREE_RS_BIN to our ostree}
CORPUS=${CORPUS:-/tmp/ostree-bench/corpus}
WORK=${WORK:-/tmp/ostree-bench/admin}
RUNS=${1:-5}
[ -d "$CORPUS/v1/usr" ] || { echo "bench: no debootstrap corpus in $CORPUS/v1 (bench/run.sh deb)" >&2; exit 2; }
export OSTREE_SYSROOT_DEBUG=mutable-deployments
ns() { unshare --user --map-root-user "$@"; }

mkdir -p "$WORK"
SROOT=$WORK
if [ "${SYSROOT_FS:-}" = tmpfs ]; then
    SROOT=$WORK/fs
    mkdir -p "$SROOT"
    mountpoint -q "$SROOT" || mount -t tmpfs -o size=6G,mode=0755 bench-sysroots "$SROOT" \
        || { echo "bench: SYSROOT_FS=tmpfs needs root (mount)" >&2; exit 2; }
    trap 'umount "$SROOT"' EXIT
elif [ "${SYSROOT_FS:-}" = ext4 ]; then
    SROOT=$WORK/fs
    IMG=/dev/shm/ostree-bench-sysroots.$$.img
    mkdir -p "$SROOT"
    truncate -s 6G "$IMG" && mkfs.ext4 -q -F "$IMG" && mount -o loop "$IMG" "$SROOT" \
        || { rm -f "$IMG"; echo "bench: SYSROOT_FS=ext4 needs root (mkfs.ext4, mount -o loop)" >&2; exit 2; }
    trap 'umount "$SROOT"; rm -f "$IMG"' EXIT
fi
if [ ! -e "$WORK/.tmpl.done" ]; then
    # The tree: corpus v1 (hardlinked) with /etc moved to /usr/etc as ostree wants it (2022.7's
    # "compatibility hack" for a root /etc renames it, then fails to check out /usr/etc), a fake
    # kernel and initramfs, and 1000 small files in /usr/etc/bench.
    rm -rf "$WORK/tree" "$WORK/tmpl"
    cp -al "$CORPUS/v1" "$WORK/tree"
    mv "$WORK/tree/etc" "$WORK/tree/usr/etc"
    mkdir -p "$WORK/tree/usr/lib/modules/6.1.0-bench" "$WORK/tree/usr/etc/bench"
    head -c 8M /dev/urandom >"$WORK/tree/usr/lib/modules/6.1.0-bench/vmlinuz"
    head -c 4M /dev/urandom >"$WORK/tree/usr/lib/modules/6.1.0-bench/initramfs.img"
    for i in $(seq -w 0 999); do echo "setting $i = default" >"$WORK/tree/usr/etc/bench/f$i.conf"; done
    "$REAL" init --repo="$WORK/tmpl" --mode=bare
    "$REAL" commit --repo="$WORK/tmpl" -b debian/bench --owner-uid=0 --owner-gid=0 \
        --tree=dir="$WORK/tree" -s bench >/dev/null
    touch "$WORK/.tmpl.done"
fi

# new_sysroot NAME: an empty sysroot holding the template commit (made with the real ostree, so
# both binaries start from the same bytes).
new_sysroot() {
    local s=$SROOT/$1
    if [ -d "$s" ]; then chattr -R -i "$s" 2>/dev/null || true; rm -rf "$s"; fi
    mkdir -p "$s"
    "$REAL" admin init-fs "$s" >/dev/null
    "$REAL" admin os-init --sysroot="$s" debian >/dev/null
    "$REAL" --repo="$s/ostree/repo" pull-local "$WORK/tmpl" debian/bench >/dev/null
}

# timed BIN SYSROOT: one deploy; prints "seconds maxrss_kib"
timed() {
    local out
    out=$(ns /usr/bin/time -f '%e %M' "$1" admin deploy --sysroot="$2" --os=debian \
        --karg=root=LABEL=root --karg=quiet debian/bench 2>&1 >/dev/null) || { echo "$out" >&2; return 1; }
    echo "$out" | tail -n1
}
undeploy0() { ns "$1" admin undeploy --sysroot="$2" 0 >/dev/null; }
median() { sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

bin_of() { if [ "$1" = ours ]; then echo "$OURS"; else echo "$REAL"; fi; }

# run_op OP: RUNS timed deploys per binary, interleaved (real, ours, real, ours, ...) so that
# both see the same machine load; each deploy is undone (untimed) before the next.
run_op() {
    local op=$1 impl bin s i t m
    declare -A times rss
    for impl in real ours; do # warm-up
        bin=$(bin_of $impl) s=$SROOT/$impl
        timed "$bin" "$s" >/dev/null && undeploy0 "$bin" "$s"
    done
    for ((i = 0; i < RUNS; i++)); do
        for impl in real ours; do
            bin=$(bin_of $impl) s=$SROOT/$impl
            read -r t m < <(timed "$bin" "$s")
            if [ "$op" = deploy-etc1000 ]; then
                [ "$(cat "$s"/ostree/deploy/debian/deploy/*.1/etc/bench/f*.conf | grep -c changed)" = 1000 ] \
                    || { echo "bench: /etc changes not merged ($impl)" >&2; exit 1; }
            fi
            undeploy0 "$bin" "$s"
            times[$impl]+="$t " rss[$impl]+="$m "
        done
    done
    for impl in real ours; do
        printf '%s\t%s\t%s\t%s\n' "$impl" "$op" \
            "$(printf '%s\n' ${times[$impl]} | median)" "$(( $(printf '%s\n' ${rss[$impl]} | median) / 1024 ))"
    done
}

TSV=$WORK/results.tsv
: >"$TSV"
for impl in real ours; do new_sysroot $impl; done
run_op deploy | tee -a "$TSV"
for impl in real ours; do timed "$(bin_of $impl)" "$SROOT/$impl" >/dev/null; done # the merge source, index 0 (then 1 when deploying)
run_op deploy-merge | tee -a "$TSV"
for impl in real ours; do
    d0=$(echo "$SROOT/$impl"/ostree/deploy/debian/deploy/*.0)
    for f in "$d0"/etc/bench/f*.conf; do echo "changed locally" >"$f"; done
done
run_op deploy-etc1000 | tee -a "$TSV"
echo
printf '%-16s %9s %9s %7s %9s %9s\n' operation real_s ours_s speed real_MiB ours_MiB
awk -F'\t' '$1 == "real" { rt[$2] = $3; rm[$2] = $4; order[++n] = $2 } $1 == "ours" { ot[$2] = $3; om[$2] = $4 }
    END { for (i = 1; i <= n; i++) { o = order[i]
        printf "%-16s %9.2f %9.2f %6.2fx %9d %9d\n", o, rt[o], ot[o], (ot[o] > 0 ? rt[o] / ot[o] : 0), rm[o], om[o] } }' "$TSV"
