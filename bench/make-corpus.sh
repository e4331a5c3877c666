#!/bin/bash
# Build the OSTree benchmark corpus (rerunnable).
#   corpus/v1        Debian bookworm --variant=minbase rootfs (debootstrap)
#   corpus/v2        v1 + bookworm-security/updates upgrade + extra packages (realistic OS update)
#   corpus/small-v1  synthetic deterministic tree: 2000 files, ~50 MB
#   corpus/small-v2  small-v1 with deterministic modifications (~10% files changed/added/removed)
# Usage: make-corpus.sh [OUTDIR]   (default /tmp/ostree-bench/corpus); needs root, debootstrap, and the Debian
# package mirror this machine's apt is configured with (MIRROR is read from /etc/apt/sources.list*).
# Env: MIRROR (default: the first .../debian URI in apt's sources), SUITE (bookworm), EXTRA_PKGS, FORCE=1 to rebuild,
#      SETS ("deb small" = both, the default; "small" builds only the synthetic pair and needs no mirror).
# (Project copy of shared/bench/make-corpus.sh; the only change is SETS.)
set -euo pipefail
SETS=${SETS:-deb small}
want() { [[ " $SETS " == *" $1 "* ]]; }
OUT=${1:-/tmp/ostree-bench/corpus}
apt_mirror() { { cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null || true; } | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 | tr -d ' ' || true; }
MIRROR=${MIRROR:-$(apt_mirror)}
MIRROR=${MIRROR%/}
! want deb || [ -n "$MIRROR" ] || { echo 'make-corpus: set MIRROR (no Debian mirror found in apt sources)' >&2; exit 2; }
SUITE=${SUITE:-bookworm}
EXTRA_PKGS=${EXTRA_PKGS:-"python3 curl ca-certificates less vim-tiny iproute2 procps openssh-client"}
CACHE=${CACHE:-/tmp/ostree-bench/debcache}
mkdir -p "$OUT" "$CACHE"
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

# NOTE: minbase has no gpgv, so apt inside the chroot cannot verify InRelease; sources are marked
# [trusted=yes] (acceptable for a benchmark corpus, never for a real system).
# Make a rootfs committable and free of runtime junk: ostree commit rejects device nodes;
# /proc,/sys,/dev,/run,/tmp content is not part of an OS image.
scrub() {
  local r=$1
  rm -rf "$r"/dev/* "$r"/proc/* "$r"/sys/* "$r"/run/* "$r"/tmp/* "$r"/var/tmp/* \
         "$r"/var/cache/apt/*.bin "$r"/var/cache/apt/archives/*.deb \
         "$r"/var/lib/apt/lists/*_Packages "$r"/var/lib/apt/lists/*_Release* "$r"/var/lib/apt/lists/*_InRelease \
         "$r"/debootstrap "$r"/etc/resolv.conf
  # anything still not a regular file/dir/symlink (fifos, sockets, devices) -> remove
  find "$r" -xdev \( -type b -o -type c -o -type p -o -type s \) -delete
}

if want deb && { [ ! -e "$OUT/.v1.done" ] || [ "${FORCE:-0}" = 1 ]; }; then
  rm -rf "$OUT/v1"
  debootstrap --variant=minbase --cache-dir="$CACHE" "$SUITE" "$OUT/v1" "$MIRROR"
  chroot "$OUT/v1" apt-get clean
  scrub "$OUT/v1"
  touch "$OUT/.v1.done"
fi

if want deb && { [ ! -e "$OUT/.v2.done" ] || [ "${FORCE:-0}" = 1 ]; }; then
  umount "$OUT/v2/var/cache/apt/archives" "$OUT/v2/proc" 2>/dev/null || true
  rm -rf --one-file-system "$OUT/v2"
  cp -a "$OUT/v1" "$OUT/v2"; rm -f "$OUT/.v2.done"
  cp /etc/resolv.conf "$OUT/v2/etc/resolv.conf"
  cat > "$OUT/v2/etc/apt/sources.list" <<SRC
deb [trusted=yes] $MIRROR $SUITE main
deb [trusted=yes] $MIRROR $SUITE-updates main
deb [trusted=yes] ${MIRROR%/debian}/debian-security $SUITE-security main
SRC
  mount -t proc proc "$OUT/v2/proc"
  trap 'umount "$OUT/v2/var/cache/apt/archives" "$OUT/v2/proc" 2>/dev/null || true' EXIT
  mkdir -p "$OUT/v2/var/cache/apt/archives"
  mount --bind "$CACHE" "$OUT/v2/var/cache/apt/archives" 2>/dev/null || true
  chroot "$OUT/v2" apt-get update
  chroot "$OUT/v2" apt-get -y -o Dpkg::Options::=--force-confdef upgrade
  chroot "$OUT/v2" apt-get -y --no-install-recommends install $EXTRA_PKGS
  umount "$OUT/v2/var/cache/apt/archives" 2>/dev/null || true
  umount "$OUT/v2/proc"; trap - EXIT
  chroot "$OUT/v2" apt-get clean
  scrub "$OUT/v2"
  touch "$OUT/.v2.done"
fi

# Synthetic small corpus: deterministic (seeded PRNG), fixed mtimes.
if want small && { [ ! -e "$OUT/.small.done" ] || [ "${FORCE:-0}" = 1 ]; }; then
  rm -rf "$OUT/small-v1" "$OUT/small-v2"
  python3 - "$OUT" <<'PY'
import os, random, sys, shutil
out = sys.argv[1]
rng = random.Random(20240601)
words = [bytes(rng.choice(b'abcdefghijklmnopqrstuvwxyz') for _ in range(rng.randint(2, 10))) for _ in range(4000)]
def content(n, r):
    kind = r.random()
    if kind < 0.35:   # incompressible (already-compressed/binary data)
        return r.randbytes(n)
    elif kind < 0.75: # text-like
        buf = bytearray()
        while len(buf) < n:
            buf += b' '.join(r.choice(words) for _ in range(12)) + b'\n'
        return bytes(buf[:n])
    else:             # ELF-ish: mix of zero runs, structure and noise
        buf = bytearray()
        while len(buf) < n:
            m = r.randint(64, 4096)
            buf += (bytes(m) if r.random() < 0.3 else r.randbytes(m // 4) * 4)
        return bytes(buf[:n])
def size(r):
    # lognormal-ish distribution like an OS tree: median ~4 KiB, a few MB-size files
    s = int(r.lognormvariate(8.3, 1.6))
    return max(0, min(s, 4 << 20))
v1 = os.path.join(out, 'small-v1')
files = []
total = 0
for i in range(2000):
    d = os.path.join(v1, 'd%02d' % (i % 40), 's%d' % (i % 7))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, 'f%04d.bin' % i)
    files.append(p)
sizes = [size(rng) for _ in files]
scale = (50 << 20) / sum(sizes)
for p, s in zip(files, sizes):
    data = content(int(s * scale), rng)
    with open(p, 'wb') as f: f.write(data)
    os.chmod(p, 0o755 if rng.random() < 0.1 else 0o644)
for i in range(0, 2000, 50):   # some symlinks
    os.symlink('f%04d.bin' % i, files[i] + '.lnk')
# v2: copy, then modify 5% in place (small edits), rewrite 3%, delete 1%, add 40 new files
v2 = os.path.join(out, 'small-v2')
shutil.copytree(v1, v2, symlinks=True)
r2 = random.Random(7)
for p in r2.sample(files, 100):
    q = p.replace(v1, v2, 1)
    b = bytearray(open(q, 'rb').read())
    for _ in range(4):
        if b:
            o = r2.randrange(len(b)); b[o:o+16] = r2.randbytes(16)
    b += b'patched\n'
    open(q, 'wb').write(bytes(b))
for p in r2.sample(files, 60):
    q = p.replace(v1, v2, 1)
    open(q, 'wb').write(content(os.path.getsize(q), r2))
for p in r2.sample(files, 20):
    q = p.replace(v1, v2, 1)
    if os.path.exists(q): os.unlink(q)
os.makedirs(os.path.join(v2, 'new'), exist_ok=True)
for i in range(40):
    open(os.path.join(v2, 'new', 'n%03d' % i), 'wb').write(content(size(r2), r2))
PY
  find "$OUT/small-v1" "$OUT/small-v2" -exec touch -h -d '2024-01-01 00:00:00 UTC' {} +
  touch "$OUT/.small.done"
fi

# Summary
for t in v1 v2 small-v1 small-v2; do
  d="$OUT/$t"
  [ -d "$d" ] || continue
  printf '%-9s files=%-6s dirs=%-5s symlinks=%-5s apparent=%s du=%s\n' "$t" \
    "$(find "$d" -type f | wc -l)" "$(find "$d" -type d | wc -l)" "$(find "$d" -type l | wc -l)" \
    "$(du -sh --apparent-size "$d" | cut -f1)" "$(du -sh "$d" | cut -f1)"
done
