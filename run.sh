#!/usr/bin/env bash
# run.sh - build, try, test and benchmark the pure-Rust ostree from a clean checkout.
#
# Usage: ./run.sh COMMAND [ARGS]
#   deps               install what everything below needs (Debian 12, as root; idempotent)
#   build              cargo build --release (the binary is target/release/ostree)
#   demo [local|s3]    deps + build, then a guided tour: init an archive repo, commit a generated
#                      sample tree, log/ls/checkout/fsck it, cross-check with the real ostree.
#                      `s3` keeps the repo in a local S3 server (moto, via .ci/moto.sh) and has
#                      the real ostree pull it over plain HTTP.
#   test               what CI runs: deps, moto, fmt, build, clippy, cargo test, then the upstream
#                      conformance suite gated on tests/conformance-expected.txt
#   conformance [ARGS] build, then run the upstream ostree test suite against our binary and
#                      print the score (ARGS go to tests/conformance/ostree-conformance.sh,
#                      e.g. `./run.sh conformance basic 'pull-*'`)
#   gate               only the conformance step of `test` (gated list first, then the score)
#   bench [small|deb]  build, make the corpus if missing, benchmark the real ostree vs ours
#                      (see bench/run.sh)
#
# Environment:
#   CARGO_TARGET_DIR            where cargo builds (default ./target)
#   OSTREE_RS_BIN               the binary under test (default target/release/ostree); when set,
#                               demo, conformance, gate and bench use it without building (set it to
#                               /usr/bin/ostree to check the plumbing with the real one)
#   OSTREE_REAL_BIN             the real ostree (default /usr/bin/ostree)
#   MOTO_PORT                   port of the S3 test server (default 9000)
#   OSTREE_CONFORMANCE_BUDGET   seconds for the whole conformance step of `test` (default 1500)
#   OSTREE_CONFORMANCE_JOBS     parallel conformance tests (default 2)
#   OSTREE_CONFORMANCE_EXPECTED the gated list (default tests/conformance-expected.txt)
#   OSTREE_E2E_BUDGET           seconds for the QEMU boot tests of `test` (default 900)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$ROOT"
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET_DIR in /*) ;; *) TARGET_DIR=$ROOT/$TARGET_DIR ;; esac
OUR_OSTREE=${OSTREE_RS_BIN:-$TARGET_DIR/release/ostree}
REAL_OSTREE=${OSTREE_REAL_BIN:-/usr/bin/ostree}
MOTO_PORT=${MOTO_PORT:-9000}
CONFORMANCE=$ROOT/tests/conformance/ostree-conformance.sh
EXPECTED=${OSTREE_CONFORMANCE_EXPECTED:-$ROOT/tests/conformance-expected.txt}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }
elapsed() { local s=$(( $(date +%s) - $1 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }

# ------------------------------------------------------------------------------------- deps
# Everything a fresh Debian 12 needs: the build, the interop judge (real ostree + its
# installed tests), the upstream suite's tools, the S3 test server's venv, and what later
# work (bootloader checks, VM boots, OS corpora) uses.
DEPS=(
    build-essential gcc make pkg-config git ca-certificates curl
    ostree ostree-tests gjs
    attr gnupg gpg-agent openssl util-linux fuse3 libcap2-bin
    python3 python3-venv python3-yaml
    grub-common qemu-system-x86 qemu-utils debootstrap
    time bsdextrautils cpio strace parallel file xz-utils
    grub-pc-bin busybox-static fdisk e2fsprogs kmod binutils   # tests/e2e (VM boots)
    syslinux syslinux-common dosfstools mtools u-boot-qemu u-boot-tools
)
cmd_deps() {
    local missing=() p
    for p in "${DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing packages (${missing[*]}); run ./run.sh deps as root"
        command -v apt-get >/dev/null || die "missing packages (${missing[*]}) and no apt-get"
        say "installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        local log=/tmp/run-sh-apt.log
        if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
            note "apt-get install failed; updating the package lists and retrying"
            apt-get update -q >>"$log" 2>&1 || true
            apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1 \
                || { tail -n 30 "$log" >&2; die "apt-get install failed (log: $log)"; }
        fi
    fi
    command -v cargo >/dev/null || die "no cargo on PATH: this project needs a Rust toolchain (1.95+)"
}

# ------------------------------------------------------------------------------------ build
cmd_build() {
    say "cargo build --release"
    local t0; t0=$(date +%s)
    cargo build --release --workspace
    [ -x "$TARGET_DIR/release/ostree" ] || die "the build did not produce $TARGET_DIR/release/ostree"
    note "built $TARGET_DIR/release/ostree in $(elapsed "$t0")"
}

# The binary under test: $OSTREE_RS_BIN as is, else a fresh release build.
ensure_binary() {
    if [ -n "${OSTREE_RS_BIN:-}" ]; then
        [ -x "$OSTREE_RS_BIN" ] || die "OSTREE_RS_BIN=$OSTREE_RS_BIN is not executable"
        note "testing OSTREE_RS_BIN=$OSTREE_RS_BIN (not building)"
    else
        cmd_build
    fi
}

# ------------------------------------------------------------------------------------- demo
make_sample_tree() { # DIR
    local t=$1
    mkdir -p "$t/usr/bin" "$t/usr/share/doc/demo" "$t/etc/demo" "$t/var/empty"
    printf '#!/bin/sh\necho "hello from an ostree commit"\n' > "$t/usr/bin/hello"
    chmod 0755 "$t/usr/bin/hello"
    printf 'This tree was generated by run.sh demo.\n' > "$t/usr/share/doc/demo/README"
    printf 'greeting = hello\n' > "$t/etc/demo/demo.conf"
    setfattr -n user.demo -v 'an extended attribute' "$t/etc/demo/demo.conf" 2>/dev/null || true
    head -c 3000000 /dev/urandom > "$t/usr/share/doc/demo/random.bin"
    : > "$t/usr/share/doc/demo/empty"
    ln -s ../share/doc/demo/README "$t/usr/bin/README"
    printf 'héllo wörld\n' > "$t/usr/share/doc/demo/unicode name ☃.txt"
}

# Start the S3 test server and import its environment; stop it on exit only if we started it.
start_moto() {
    local errf envs
    errf=$(mktemp)
    envs=$(.ci/moto.sh start "$MOTO_PORT" 2>"$errf") || { cat "$errf" >&2; rm -f "$errf"; die "could not start moto"; }
    cat "$errf" >&2
    eval "$envs"
    grep -q 'already running' "$errf" || trap '.ci/moto.sh stop "$MOTO_PORT" >/dev/null 2>&1 || true' EXIT
    rm -f "$errf"
}

show() { printf '\033[36m$ %s\033[0m\n' "$*" >&2; "$@"; }

cmd_demo() {
    local where=${1:-local}
    case $where in local | s3) ;; *) die "usage: ./run.sh demo [local|s3]" ;; esac
    cmd_deps
    ensure_binary
    local W; W=$(mktemp -d /tmp/ostree-demo.XXXXXX)
    local O=$OUR_OSTREE repo
    make_sample_tree "$W/tree"
    if [ "$where" = s3 ]; then
        say "starting a local S3 server (moto) with .ci/moto.sh"
        [ -x .ci/moto.sh ] || die ".ci/moto.sh is missing"
        start_moto
        local prefix; prefix=demo-$(date +%s)
        repo="s3://ostree-test/$prefix?endpoint=http://127.0.0.1:$MOTO_PORT&region=us-east-1"
    else
        repo=$W/repo
    fi
    say "1. create an archive repository: $repo"
    show "$O" init --repo="$repo" --mode=archive
    say "2. commit the generated sample tree ($W/tree)"
    show find "$W/tree" -printf '    %M %10s %P\n'
    local c
    c=$("$O" commit --repo="$repo" -b demo/main -s 'Demo commit' -m 'Made by ./run.sh demo' \
        --timestamp=2024-01-01T00:00:00Z --add-metadata-string=version=1.0 "$W/tree")
    printf '    commit %s\n' "$c"
    say "3. inspect it"
    show "$O" refs --repo="$repo"
    show "$O" log --repo="$repo" demo/main
    show "$O" ls --repo="$repo" -R demo/main
    say "4. check it out and compare with the source tree"
    show "$O" checkout --repo="$repo" demo/main "$W/checkout"
    if diff -r --no-dereference "$W/tree" "$W/checkout" >/dev/null; then
        note "checkout content is identical to the source tree"
    else
        die "checkout differs from the source tree"
    fi
    say "5. verify every object"
    show "$O" fsck --repo="$repo"
    if [ -x "$REAL_OSTREE" ]; then
        say "6. cross-check with the real ostree ($REAL_OSTREE)"
        local rc rr=$W/real-repo
        if [ "$where" = s3 ]; then
            note "the bucket is public-read: the real ostree pulls the repo over plain HTTP"
            show "$REAL_OSTREE" init --repo="$rr" --mode=archive
            show "$REAL_OSTREE" remote add --repo="$rr" --no-gpg-verify demo "http://127.0.0.1:$MOTO_PORT/ostree-test/$prefix"
            show "$REAL_OSTREE" pull --repo="$rr" demo demo/main
            rc=$("$REAL_OSTREE" rev-parse --repo="$rr" demo:demo/main)
        else
            show "$REAL_OSTREE" init --repo="$rr" --mode=archive
            rc=$("$REAL_OSTREE" commit --repo="$rr" -b demo/main -s 'Demo commit' -m 'Made by ./run.sh demo' \
                --timestamp=2024-01-01T00:00:00Z --add-metadata-string=version=1.0 "$W/tree")
            show "$REAL_OSTREE" fsck --repo="$repo"
        fi
        printf '    ours: %s\n    real: %s\n' "$c" "$rc"
        [ "$c" = "$rc" ] && note "same commit checksum: the two implementations agree bit for bit" \
            || die "commit checksums differ"
    fi
    say "demo done (files in $W)"
}

# ---------------------------------------------------------------------------- conformance
expected_tests() { # the gated list, one test file name per line
    [ -f "$EXPECTED" ] || return 0
    sed -e 's/#.*//' -e 's/[[:space:]]//g' "$EXPECTED" | grep -v '^$' || true
}

cmd_conformance() {
    cmd_deps
    ensure_binary
    local bindir; bindir=$(mktemp -d /tmp/ostree-rs-bin.XXXXXX)
    ln -s "$OUR_OSTREE" "$bindir/ostree"
    say "upstream conformance suite against $OUR_OSTREE"
    bash "$CONFORMANCE" -j "${OSTREE_CONFORMANCE_JOBS:-2}" -b "$bindir" "$@"
}

# Run the suite for the gate: the expected tests first (each must pass), then the rest for the
# score, all within OSTREE_CONFORMANCE_BUDGET seconds. Scores come from the per-test result
# files, so a run stopped by the budget still counts what finished (the rest: "not run").
conformance_gate() {
    local budget=${OSTREE_CONFORMANCE_BUDGET:-1500} jobs=${OSTREE_CONFORMANCE_JOBS:-2}
    local out; out=$(mktemp -d /tmp/ostree-conformance-ci.XXXXXX)
    local bindir=$out/bin; mkdir -p "$bindir"; ln -s "$OUR_OSTREE" "$bindir/ostree"
    local -a expected all rest excl=()
    mapfile -t expected < <(expected_tests)
    mapfile -t all < <(bash "$CONFORMANCE" -n -l -b "$bindir")
    local t0; t0=$(date +%s)
    if [ ${#expected[@]} -gt 0 ]; then
        note "gated tests (${#expected[@]}, from ${EXPECTED#"$ROOT"/})"
        # 180 s per test: the slowest gated test (delta-ed25519, 16 bsdiffs of the `ostree`
        # binary on PATH, which is ours: 24 MB against the real one's 0.3 MB) takes 60-70 s
        # on an idle 2-core machine and twice that under load.
        timeout -k 30 "$budget" bash "$CONFORMANCE" -n -j "$jobs" -t 180 -o "$out/expected" \
            -b "$bindir" "${expected[@]}" >"$out/expected.log" 2>&1 || true
        for t in "${expected[@]}"; do excl+=(-x "$t"); done
    fi
    local left=$(( budget - ($(date +%s) - t0) ))
    [ "$left" -gt 900 ] && left=900
    if [ "$left" -gt 30 ]; then
        note "other tests (score only; $left s budget, 60 s per test)"
        timeout -k 30 "$left" bash "$CONFORMANCE" -n -j "$jobs" -t 60 -o "$out/rest" \
            -b "$bindir" "${excl[@]}" >"$out/rest.log" 2>&1 || true
    fi
    # tally
    declare -A res=()
    local f t st
    for f in "$out"/rest/results/*.res "$out"/expected/results/*.res; do
        [ -f "$f" ] || continue
        IFS=$'\t' read -r t st _ < "$f"
        res[$t]=$st
    done
    local pass=0 fail=0 skip=0 notrun=0
    for t in "${all[@]}"; do
        case ${res[$t]:-notrun} in
            pass) pass=$((pass + 1)) ;;
            skip) skip=$((skip + 1)) ;;
            notrun) notrun=$((notrun + 1)); fail=$((fail + 1)) ;;
            *) fail=$((fail + 1)) ;;
        esac
    done
    local bad=() e
    for e in "${expected[@]}"; do
        st=${res[$e]:-not run}
        [ "$st" = pass ] || bad+=("$e ($st)")
    done
    note "logs and per-test results: $out (took $(elapsed "$t0"); $notrun not run within the budget)"
    printf 'conformance gate: %d of %d expected tests passed\n' $(( ${#expected[@]} - ${#bad[@]} )) "${#expected[@]}"
    echo "conformance: $pass passed, $fail failed, $skip skipped"
    GATE_PASSED=$(( ${#expected[@]} - ${#bad[@]} ))
    GATE_FAILED=${#bad[@]}
    if [ ${#bad[@]} -gt 0 ]; then
        printf 'FAILED expected conformance test: %s\n' "${bad[@]}" >&2
        for e in "${bad[@]}"; do
            e=${e%% *}
            [ -f "$out/expected/logs/$e.log" ] || continue
            echo "--- $e: tail of $out/expected/logs/$e.log" >&2
            grep -vE '^(gpg-connect-agent:|OK closing connection)' "$out/expected/logs/$e.log" | tail -n 15 >&2
        done
        return 1
    fi
}

# ------------------------------------------------------------------------------------- test
cmd_test() {
    local T0; T0=$(date +%s)
    local failed=() cargo_log; cargo_log=$(mktemp /tmp/run-sh-cargo-test.XXXXXX)
    say "dependencies"
    cmd_deps
    if [ -x .ci/moto.sh ]; then
        say "S3 test server (moto)"
        start_moto
        export OSTREE_TEST_REQUIRE=s3,ostree
    else
        note ".ci/moto.sh not found: S3 tests are not required in this run"
        export OSTREE_TEST_REQUIRE=ostree
    fi
    say "cargo fmt --check"
    cargo fmt --all --check || failed+=("cargo fmt --check")
    local t; t=$(date +%s)
    if ! cmd_build; then
        failed+=("cargo build --release")
        printf 'run.sh test: FAILED: %s\n' "${failed[*]}" >&2
        exit 1
    fi
    say "cargo clippy --all-targets -- -D warnings"
    t=$(date +%s)
    cargo clippy --release --workspace --all-targets -- -D warnings || failed+=("cargo clippy")
    note "clippy took $(elapsed "$t")"
    say "cargo test (release; interop tests judge $OUR_OSTREE against $REAL_OSTREE)"
    t=$(date +%s)
    export OSTREE_RS_BIN=$OUR_OSTREE
    export OSTREE_TEST_HUGE_MB=${OSTREE_TEST_HUGE_MB:-256}   # one ~10 s test: a 256 MiB sparse-ish file
    set -o pipefail
    # The `ci` profile: release optimisation without LTO (see Cargo.toml).
    cargo test --profile ci --workspace --no-fail-fast 2>&1 | tee "$cargo_log" || failed+=("cargo test")
    note "cargo test took $(elapsed "$t")"
    say "upstream conformance suite (gated on tests/conformance-expected.txt)"
    GATE_PASSED=0 GATE_FAILED=0
    conformance_gate || failed+=("conformance gate")
    say "boot tests under QEMU (tests/e2e: GRUB2 BIOS boot, upgrade, rollback, power cuts)"
    local e2e_log; e2e_log=$(mktemp /tmp/run-sh-e2e.XXXXXX)
    timeout "${OSTREE_E2E_BUDGET:-900}" bash tests/e2e/run.sh 2>&1 | tee "$e2e_log" || failed+=("e2e")
    read -r E2E_PASSED E2E_FAILED < <(sed -n 's/^e2e: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$e2e_log" | tail -n 1; echo 0 0)
    GATE_PASSED=$((GATE_PASSED + E2E_PASSED)) GATE_FAILED=$((GATE_FAILED + E2E_FAILED))
    # one closing line: every gated result (cargo tests + expected conformance tests)
    local cp cf ci
    read -r cp cf ci < <(grep -E '^test result:' "$cargo_log" | awk '
        { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed/) p += $(i-1); if ($(i) ~ /^failed/) f += $(i-1); if ($(i) ~ /^ignored/) g += $(i-1) } }
        END { printf "%d %d %d\n", p, f, g }')
    say "done in $(elapsed "$T0")"
    if [ ${#failed[@]} -gt 0 ]; then
        printf 'run.sh test: FAILED: %s\n' "$(IFS=,; echo "${failed[*]}")" >&2
        echo "ci: $((cp + GATE_PASSED)) passed, $((cf + GATE_FAILED + ${#failed[@]})) failed, $ci skipped"
        exit 1
    fi
    echo "ci: $((cp + GATE_PASSED)) passed, $((cf + GATE_FAILED)) failed, $ci skipped"
}

# ------------------------------------------------------------------------------------ bench
cmd_bench() {
    exec bash "$ROOT/bench/run.sh" "$@"
}

# ------------------------------------------------------------------------------------- main
cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
    deps) cmd_deps ;;
    build) cmd_build ;;
    demo) cmd_demo "$@" ;;
    test) cmd_test "$@" ;;
    conformance) cmd_conformance "$@" ;;
    gate) cmd_deps; ensure_binary; conformance_gate ;;
    bench) cmd_bench "$@" ;;
    -h | --help | help | '') sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' ;;
    *) die "unknown command '$cmd' (try ./run.sh help)" ;;
esac
