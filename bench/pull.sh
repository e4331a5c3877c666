#!/usr/bin/env bash
# Benchmark: `ostree pull` over loopback HTTP, ours against the real ostree 2022.7, on the
# corpus's v1/v2 trees. The server repo (archive) is made by the real ostree (v1 and v2
# commits on `main`, a v1→v2 static delta, summary) and served by the packaged
# ostree-trivial-httpd, the same for both clients. Each client pulls into a bare-user repo:
#   full   — main@V1, --disable-static-deltas, into an empty repo
#   objs   — then main (V2), --disable-static-deltas (v1→v2 by objects)
#   delta  — into a repo holding V1 (pulled untimed), main with --require-static-deltas
# Prints wall seconds, peak RSS (KiB, /usr/bin/time), the client's CPU time (user + system),
# the server's CPU time during the pull, the time some task on the machine waited for a CPU
# or for I/O during the pull (/proc/pressure "some" totals: with other work on the machine,
# this is what moves the wall time from run to run) and the bytes the client reports.
#
#   bench/pull.sh [OURS_BIN]     env: CORPUS (default /tmp/ostree-bench/corpus),
#                                SET (deb = v1,v2 | small), WORK (default /tmp/ostree-bench/pull),
#                                FSYNC (1 = leave fsync on; default pulls use --disable-fsync),
#                                SERVER (trivial-httpd, the default | nginx: Debian's nginx,
#                                one worker, its stock static-file settings, on 127.0.0.1)
set -euo pipefail
HERE=$(cd "$(dirname "$0")/.." && pwd)
OURS=${1:-$HERE/target/release/ostree}
REAL=/usr/bin/ostree
CORPUS=${CORPUS:-/tmp/ostree-bench/corpus}
SET=${SET:-deb}
WORK=${WORK:-/tmp/ostree-bench/pull}
HTTPD=/usr/libexec/libostree/ostree-trivial-httpd
case $SET in deb) V1=$CORPUS/v1 V2=$CORPUS/v2 ;; small) V1=$CORPUS/small-v1 V2=$CORPUS/small-v2 ;; esac
NOFSYNC=--disable-fsync
[ "${FSYNC:-0}" = 1 ] && NOFSYNC=
rm -rf "$WORK" && mkdir -p "$WORK"
srv=$WORK/srv
$REAL init --repo="$srv" --mode=archive
c1=$($REAL commit --repo="$srv" -b main --tree=dir="$V1" -s v1 --fsync=false)
c2=$($REAL commit --repo="$srv" -b main --tree=dir="$V2" -s v2 --fsync=false)
$REAL static-delta generate --repo="$srv" --from="$c1" --to="$c2" >/dev/null 2>&1
$REAL summary --repo="$srv" -u
case ${SERVER:=trivial-httpd} in
trivial-httpd)
    $HTTPD -p "$WORK/port" "$WORK" >"$WORK/httpd.log" 2>&1 &
    HPID=$!
    for _ in $(seq 50); do [ -s "$WORK/port" ] && break; sleep 0.1; done
    PORT=$(cat "$WORK/port") ;;
nginx)
    # A static web server as real remotes use: Debian's nginx with its stock settings for
    # static files (sendfile, keep-alive), one worker process, serving the same directory.
    PORT=$((20000 + RANDOM % 20000))
    mkdir -p "$WORK/nginx"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $WORK/nginx/pid;
error_log $WORK/nginx/error.log;
events { worker_connections 768; }
http {
    sendfile on; tcp_nopush on; types_hash_max_size 2048;
    default_type application/octet-stream;
    access_log $WORK/nginx/access.log;
    client_body_temp_path $WORK/nginx/body; proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi; uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server { listen 127.0.0.1:$PORT; root $WORK; }
}
NGINX
    /usr/sbin/nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx" >"$WORK/httpd.log" 2>&1 &
    HPID=$!
    for _ in $(seq 50); do curl -sf -o /dev/null "http://127.0.0.1:$PORT/srv/config" && break; sleep 0.1; done ;;
*) echo "SERVER must be trivial-httpd or nginx" >&2; exit 2 ;;
esac
trap 'kill $HPID 2>/dev/null || true' EXIT
URL=http://127.0.0.1:$PORT/srv
echo "server: $SERVER, $(du -sh "$srv/objects" | cut -f1) objects, v1=$c1 v2=$c2, url $URL"

srvcpu() { # CPU ticks (user + system) of the server and its worker processes so far
    local t=0 p
    for p in $HPID $(pgrep -P "$HPID" || true); do
        t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo $t
}
psi() { # microseconds some task waited for $1 (cpu, io) since boot; 0 without PSI
    awk '/^some/ { sub("total=", "", $5); print $5 }' "/proc/pressure/$1" 2>/dev/null || echo 0
}
fresh() { # BIN DIR
    rm -rf "$2"
    $1 init --repo="$2" --mode=bare-user
    $1 remote add --repo="$2" --set=gpg-verify=false origin "$URL"
}
run() { # LABEL BIN DIR ARGS...
    local label=$1 bin=$2 dir=$3; shift 3
    local who=real; [ "$bin" = "$REAL" ] || who=ours
    sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true
    local s0 c0 i0; s0=$(srvcpu) c0=$(psi cpu) i0=$(psi io)
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/time" "$bin" --repo="$dir" pull $NOFSYNC "$@" >"$WORK/out" 2>&1 \
        || { cat "$WORK/out"; exit 1; }
    local s1 c1 i1; s1=$(srvcpu) c1=$(psi cpu) i1=$(psi io)
    read -r secs rss usr sys <"$WORK/time"
    local bytes
    bytes=$(grep -o '[0-9]* [KMG]*i*B transferred' "$WORK/out" | tail -1 || true)
    printf '%-6s %-5s %6.2fs %6d KiB  cpu %5.2fs  server cpu %5.2fs  stall cpu/io %5.2f/%4.2fs  %s\n' \
        "$label" "$who" "$secs" "$rss" "$(echo "$usr + $sys" | bc)" \
        "$(echo "($s1 - $s0) / $(getconf CLK_TCK)" | bc -l)" "$(echo "($c1 - $c0) / 1000000" | bc -l)" \
        "$(echo "($i1 - $i0) / 1000000" | bc -l)" "${bytes:-?}"
    tail -1 "$WORK/out" >>"$WORK/lines"
}
# Every client repository gets its own directory and none is deleted during the run: on ext4
# without a journal, inodes freed in the last minutes are skipped (slowly) when new ones are
# allocated, so deleting one client's repository used to slow down the next client's pull.
for who in real ours; do
    bin=$REAL; [ $who = ours ] && bin=$OURS
    d=$WORK/$who
    fresh "$bin" "$d"
    run full "$bin" "$d" --disable-static-deltas origin "main@$c1"
    run objs "$bin" "$d" --disable-static-deltas origin main
    d=$WORK/$who-delta
    fresh "$bin" "$d"
    "$bin" --repo="$d" pull $NOFSYNC --disable-static-deltas origin "main@$c1" >/dev/null
    run delta "$bin" "$d" --require-static-deltas origin main
    "$REAL" --repo="$d" fsck >/dev/null 2>&1 && echo "       $who: fsck (real ostree) ok"
done
