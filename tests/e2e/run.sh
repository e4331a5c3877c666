#!/usr/bin/env bash
# tests/e2e/run.sh - boot deployments made by our ostree under QEMU (see e2e.py and README.md).
#
# Environment:
#   OSTREE_RS_BIN              our ostree (default $CARGO_TARGET_DIR/release/ostree)
#   OSTREE_PREPARE_ROOT_BIN    our ostree-prepare-root (default: a statically linked one built
#                              here from the release build's dependencies, see below)
#   E2E_*                      see e2e.py
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export OSTREE_RS_BIN=${OSTREE_RS_BIN:-$TARGET_DIR/release/ostree}
[ -x "$OSTREE_RS_BIN" ] || { echo "e2e: $OSTREE_RS_BIN is not built" >&2; exit 1; }

if [ -z "${OSTREE_PREPARE_ROOT_BIN:-}" ]; then
    # The initramfs has no C library: link ostree-prepare-root statically against glibc.
    # Only the final link gets +crt-static (`cargo rustc` passes the flag to this binary
    # alone), so the release build's dependencies are reused as they are.
    static=$TARGET_DIR/e2e-static/ostree-prepare-root
    mkdir -p "$(dirname "$static")"
    (cd "$ROOT" && cargo rustc --release -q -p ostree-cli --bin ostree-prepare-root \
        -- -C target-feature=+crt-static) >&2
    cp "$TARGET_DIR/release/ostree-prepare-root" "$static"
    export OSTREE_PREPARE_ROOT_BIN=$static
fi
exec python3 "$HERE/e2e.py"
