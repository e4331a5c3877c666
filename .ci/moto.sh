#!/usr/bin/env bash
# A real S3 server for the object-storage backend's tests: moto_server (PyPI `moto[server]`,
# which honours conditional PUT: If-None-Match and If-Match), on 127.0.0.1.
#
#   .ci/moto.sh start [PORT]   install moto into a venv (reused if present), start it in the
#                              background, wait until it answers, create the bucket
#                              `ostree-test` (public-read, so plain HTTP clients such as the real
#                              ostree can pull from it), and print the environment to export:
#                                  eval "$(.ci/moto.sh start 9000)"
#   .ci/moto.sh stop [PORT]    stop the server started by `start` on PORT
#   .ci/moto.sh env [PORT]     print the environment again
#
# Everything but the `export` lines goes to stderr. Settings (environment):
#   MOTO_VENV       where the venv lives (default /opt/moto-venv)
#   MOTO_STATE_DIR  pid and log files (default /tmp/ostree-moto)
#   MOTO_BUCKET     bucket to create (default ostree-test)
#   MOTO_PYTHON     interpreter that creates the venv (default python3)
set -euo pipefail

VENV=${MOTO_VENV:-/opt/moto-venv}
STATE=${MOTO_STATE_DIR:-/tmp/ostree-moto}
BUCKET=${MOTO_BUCKET:-ostree-test}
PYTHON=${MOTO_PYTHON:-python3}
MOTO_SPEC='moto[server]>=5.1,<6'

log() { echo "moto.sh: $*" >&2; }

port_arg() {
    local port=${1:-9000}
    case $port in
        '' | *[!0-9]*) log "invalid port '$port'"; exit 2 ;;
    esac
    echo "$port"
}

answers() {
    curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null
}

running_pid() {
    local pidfile="$STATE/moto-$1.pid" pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 1
    echo "$pid"
}

install() {
    if [[ -x $VENV/bin/moto_server ]] && "$VENV/bin/python" -c 'import moto.server' 2>/dev/null; then
        return
    fi
    if [[ -e $VENV ]]; then
        log "$VENV is not a working moto venv; recreating it"
        rm -rf "$VENV"
    fi
    log "installing $MOTO_SPEC into $VENV"
    "$PYTHON" -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet "$MOTO_SPEC" >&2
    [[ -x $VENV/bin/moto_server ]] || { log "moto_server missing after install"; exit 1; }
}

print_env() {
    local port=$1
    cat <<EOF
export OSTREE_TEST_S3_URL='s3://$BUCKET?endpoint=http://127.0.0.1:$port&region=us-east-1'
export AWS_ACCESS_KEY_ID=testing
export AWS_SECRET_ACCESS_KEY=testing
export AWS_REGION=us-east-1
export AWS_ALLOW_HTTP=true
EOF
}

start() {
    local port pid i
    port=$(port_arg "${1:-}")
    mkdir -p "$STATE"
    if pid=$(running_pid "$port") && answers "$port"; then
        log "already running on port $port (pid $pid)"
    else
        if answers "$port"; then
            log "port $port is taken by something this script did not start"
            exit 1
        fi
        install
        log "starting moto_server on 127.0.0.1:$port (log $STATE/moto-$port.log)"
        setsid nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" \
            >"$STATE/moto-$port.log" 2>&1 </dev/null &
        echo $! >"$STATE/moto-$port.pid"
        for i in $(seq 1 100); do
            answers "$port" && break
            if ! running_pid "$port" >/dev/null; then
                log "moto_server exited; its log:"
                cat "$STATE/moto-$port.log" >&2
                exit 1
            fi
            sleep 0.2
        done
        answers "$port" || { log "moto_server did not answer within 20 s"; exit 1; }
    fi
    # Anonymous requests are accepted by moto; the ACL makes objects readable without keys.
    curl -s -o /dev/null --fail-with-body -X PUT -H 'x-amz-acl: public-read' \
        "http://127.0.0.1:$port/$BUCKET" >&2 || {
        log "could not create bucket $BUCKET"
        exit 1
    }
    print_env "$port"
}

stop() {
    local port pid
    port=$(port_arg "${1:-}")
    if pid=$(running_pid "$port"); then
        kill "$pid"
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        log "stopped moto_server on port $port (pid $pid)"
    else
        log "no moto_server of ours on port $port"
    fi
    rm -f "$STATE/moto-$port.pid"
}

case ${1:-} in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    env) print_env "$(port_arg "${2:-}")" ;;
    *)
        echo "usage: $0 start [PORT] | stop [PORT] | env [PORT]" >&2
        exit 2
        ;;
esac
