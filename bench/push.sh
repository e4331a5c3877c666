#!/usr/bin/env bash
# Benchmark: `ostree push` of a locally committed archive repo to S3 (moto on 127.0.0.1)
# against `aws s3 sync` of the same repo directory to the same bucket, for the corpus's v1
# and then v2 (incremental). Prints wall times, the requests each tool sent (counted in
# moto's request log, by key prefix), the CPU time moto spent serving them (from
# /proc/PID/stat: moto is the bottleneck, and this is steadier than wall time on a shared
# machine) and objects uploaded.
#
#   bench/push.sh [OURS_BIN]        (default target/release/ostree)
# env: CORPUS (default /tmp/ostree-bench/corpus), SET (deb = v1,v2; small = small-v1,v2),
#      PORT (moto port, default 9150), JOBS (push --jobs, default: push's default),
#      WORK (scratch, default /tmp/ostree-bench/push)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OURS=${1:-$HERE/target/release/ostree}
CORPUS=${CORPUS:-/tmp/ostree-bench/corpus}
SET=${SET:-deb}
PORT=${PORT:-9150}
WORK=${WORK:-/tmp/ostree-bench/push}
REAL=/usr/bin/ostree
case $SET in deb) V1=$CORPUS/v1 V2=$CORPUS/v2 ;; small) V1=$CORPUS/small-v1 V2=$CORPUS/small-v2 ;; esac
export MOTO_STATE_DIR=$WORK/moto
rm -rf "$WORK" && mkdir -p "$WORK"
"$HERE/.ci/moto.sh" stop "$PORT" 2>/dev/null || true
eval "$("$HERE/.ci/moto.sh" start "$PORT" 2>/dev/null)"
trap '"$HERE/.ci/moto.sh" stop "$PORT" >/dev/null 2>&1 || true' EXIT
LOG=$MOTO_STATE_DIR/moto-$PORT.log
MOTO_PID=$(<"$MOTO_STATE_DIR/moto-$PORT.pid")
EP=http://127.0.0.1:$PORT
DEST="s3://ostree-test/push?endpoint=$EP&region=us-east-1"
JOBSARG=${JOBS:+--jobs=$JOBS}

reqs() { grep -c -e " /ostree-test/$1/" -e "prefix=$1" "$LOG" || true; }
puts() { grep -c "\"PUT /ostree-test/$1/" "$LOG" || true; }
now() { date +%s.%N; }
moto_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$MOTO_PID/stat"; }
repo=$WORK/repo
$REAL init --repo="$repo" --mode=archive
step() { # VERSION TREE
    local v=$1 tree=$2 t0 t1 r0 p0 c0 n
    $REAL commit --repo="$repo" -b main --tree=dir="$tree" -s "$v" --timestamp=2023-11-14T22:13:20Z \
        --fsync=false >/dev/null
    $REAL summary --repo="$repo" -u
    n=$(find "$repo/objects" -type f | wc -l)
    r0=$(reqs sync) p0=$(puts sync) c0=$(moto_cpu) t0=$(now)
    aws --endpoint-url "$EP" s3 sync --only-show-errors "$repo" s3://ostree-test/sync >/dev/null
    t1=$(now)
    printf '%s\taws s3 sync\t%.2f s\t%s requests\t%s PUTs\tmoto CPU %.2f s\t(repo: %s objects)\n' \
        "$v" "$(echo "$t1 - $t0" | bc)" "$(( $(reqs sync) - r0 ))" "$(( $(puts sync) - p0 ))" \
        "$(echo "$(moto_cpu) - $c0" | bc)" "$n"
    r0=$(reqs push) p0=$(puts push) c0=$(moto_cpu) t0=$(now)
    out=$("$OURS" push --repo="$repo" $JOBSARG "$DEST" main)
    t1=$(now)
    printf '%s\tostree push\t%.2f s\t%s requests\t%s PUTs\tmoto CPU %.2f s\t(%s)\n' "$v" \
        "$(echo "$t1 - $t0" | bc)" "$(( $(reqs push) - r0 ))" "$(( $(puts push) - p0 ))" \
        "$(echo "$(moto_cpu) - $c0" | bc)" "$(echo "$out" | tail -1)"
}
step v1 "$V1"
step v2 "$V2"
# The real ostree can pull what push wrote.
$REAL init --repo="$WORK/judge" --mode=archive
$REAL remote add --repo="$WORK/judge" --no-gpg-verify b "$EP/ostree-test/push"
$REAL pull --repo="$WORK/judge" b main >/dev/null
$REAL fsck --repo="$WORK/judge" >/dev/null && echo "real ostree pull + fsck of the pushed v2: ok"
