#!/usr/bin/env bash
# bench/run.sh - benchmark the real ostree against ours in one interleaved run, then print
# per-operation ratios.
#
# Usage: bench/run.sh [small|deb] [bench-ostree.sh options: -n RUNS -N LONG_RUNS -o OPS]
#   small  synthetic corpus (2000 files, ~50 MB; built in seconds)           (default)
#   deb    debootstrap'ed Debian tree + its upgrade (needs the Debian mirror apt uses; minutes)
#
# Steps: build ours (cargo build --release -p ostree-cli) unless OSTREE_RS_BIN is set; build the
# corpus with make-corpus.sh if it is missing; run bench-ostree.sh with the real ostree FIRST
# (its archive repo and deltas are the ones served for the pull tests) and ours second; print
# the ratios from its TSV:
#   speed  = real median time / our median time   (> 1: ours is faster)
#   memory = our peak RSS / real peak RSS          (< 1: ours uses less)
#   real_cpu, ours_cpu = user + system CPU seconds (the machine's other load shows in wall time
#   first: compare both when it is busy)
#
# Env: OSTREE_RS_BIN (ours), OSTREE_REAL_BIN (default /usr/bin/ostree), CORPUS (default
# /tmp/ostree-bench/corpus), WORK (default /tmp/ostree-bench/work), FSYNC (see bench-ostree.sh),
# WORK_FS=ext4 (root: WORK on a fresh journaled ext4 made in a file on /dev/shm and
# loop-mounted for the run, instead of whatever filesystem holds WORK: the repos and checkouts
# then see ext4's code paths without the disk's noise, or the journal-less root filesystem's
# slow inode allocation after a previous run's tree was deleted; see bench/checkout-fsck.md).
# Plumbing check with the real binary on both sides (ratios ~1):
#   OSTREE_RS_BIN=/usr/bin/ostree bench/run.sh small
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SET=${1:-small}
[ $# -gt 0 ] && shift
case $SET in small | deb) ;; *) echo "usage: $0 [small|deb] [bench-ostree.sh options]" >&2; exit 2 ;; esac
REAL=${OSTREE_REAL_BIN:-/usr/bin/ostree}
[ -x "$REAL" ] || { echo "bench: the real ostree ($REAL) is missing: ./run.sh deps" >&2; exit 2; }
export CORPUS=${CORPUS:-/tmp/ostree-bench/corpus} WORK=${WORK:-/tmp/ostree-bench/work}

if [ -n "${OSTREE_RS_BIN:-}" ]; then
    OURS=$OSTREE_RS_BIN
else
    (cd "$ROOT" && cargo build --release -p ostree-cli)
    TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
    case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
    OURS=$TARGET_DIR/release/ostree
fi
[ -x "$OURS" ] || { echo "bench: our ostree ($OURS) is missing" >&2; exit 2; }

case $SET in
    small) [ -e "$CORPUS/.small.done" ] || SETS=small bash "$HERE/make-corpus.sh" "$CORPUS" ;;
    deb) { [ -e "$CORPUS/.v1.done" ] && [ -e "$CORPUS/.v2.done" ]; } || SETS=deb bash "$HERE/make-corpus.sh" "$CORPUS" ;;
esac

if [ "${WORK_FS:-}" = ext4 ]; then
    IMG=/dev/shm/ostree-bench-work.$$.img
    mkdir -p "$WORK"
    truncate -s 12G "$IMG" && mkfs.ext4 -q -F "$IMG" && mount -o loop "$IMG" "$WORK" \
        || { rm -f "$IMG"; echo "bench: WORK_FS=ext4 needs root (mkfs.ext4, mount -o loop)" >&2; exit 2; }
    trap 'umount "$WORK"; rm -f "$IMG"' EXIT
    echo "# WORK: fresh ext4 (loop, $IMG)"
fi
echo "# real: $REAL"
echo "# ours: $OURS"
bash "$HERE/bench-ostree.sh" -c "$SET" "$@" "$REAL" "$OURS"
TSV=$WORK/$SET/results.tsv
[ -s "$TSV" ] || { echo "bench: no results in $TSV" >&2; exit 1; }

# results.tsv: impl op corpus median min max rss files/s MB/s info; per op, the real binary's
# line comes first (argument order), ours second.
echo
echo "# ratios (speed = real/ours time: >1 ours faster; memory = ours/real peak RSS: <1 ours smaller)"
awk -F'\t' '
    function cpu(info) { return match(info, /cpu=[0-9.]+/) ? substr(info, RSTART + 4, RLENGTH - 4) + 0 : 0 }
    { n = ++seen[$2]; if (n == 1) { order[++nops] = $2; rt[$2] = $4; rm[$2] = $7; ri[$2] = $10; rc[$2] = cpu($10) }
      else if (n == 2) { ot[$2] = $4; om[$2] = $7; oi[$2] = $10; oc[$2] = cpu($10) } }
    END {
        printf "%-30s %9s %9s %7s %9s %9s %7s %8s %8s  %s\n", "operation", "real_s", "ours_s", "speed", "real_MiB", "ours_MiB", "memory", "real_cpu", "ours_cpu", "notes"
        for (i = 1; i <= nops; i++) {
            op = order[i]
            sp = (ot[op] > 0) ? rt[op] / ot[op] : 0
            mr = (rm[op] > 0) ? om[op] / rm[op] : 0
            note = ""
            if (ri[op] ~ /^FAILED/) note = note "real FAILED "
            if (oi[op] ~ /^FAILED/) note = note "ours FAILED "
            printf "%-30s %9.3f %9.3f %7.2f %9.1f %9.1f %7.2f %8.2f %8.2f  %s\n", op, rt[op], ot[op], sp, rm[op], om[op], mr, rc[op], oc[op], note
            if (sp > 0 && note == "") { ls += log(sp); lm += log(mr > 0 ? mr : 1); k++ }
        }
        if (k > 0) printf "%-30s %9s %9s %7.2f %9s %9s %7.2f  (geometric means over %d ops)\n", "overall", "", "", exp(ls / k), "", "", exp(lm / k), k
    }' "$TSV" | tee "$WORK/$SET/ratios.txt"
if [ "${WORK_FS:-}" = ext4 ]; then # WORK goes away with its filesystem: keep the results
    mkdir -p "$WORK.results" && cp "$TSV" "$WORK/$SET/ratios.txt" "$WORK.results/"
    echo "# TSV and ratios kept in $WORK.results/"
else
    echo "# TSV: $TSV; ratios: $WORK/$SET/ratios.txt"
fi
