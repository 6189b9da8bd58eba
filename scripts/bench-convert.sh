#!/usr/bin/env bash
# Benchmark of `arca convert` (issue 5) against the least work any converter must do:
#   baseline = one SHA-NI hashing pass over the files (`openssl dgst -sha256`)
#            + compressing the rewritten layer bytes once with the same codec and level (gzip/pigz, zstd CLI)
# and `skopeo copy` of the same image as the I/O reference.
#
# The image holds >= 1 GiB of real files (copied from /usr) plus a DATA directory that the second run
# encrypts. It is a `podman save` docker archive (uncompressed layers, as `docker save` writes them), so
# every layer byte is compressed once by the converter and once by the baseline.
#
# Usage: scripts/bench-convert.sh [WORKDIR]   (needs ~6 GiB free; prints a Markdown table)
# Measures, does not assert. Record the output with `uptime` in BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d /var/tmp/arca-bench.XXXXXX)}"
mkdir -p "$WORK"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${XDG_CONFIG_HOME:-$HOME/.config}/arca/containers.conf}"
SIZE_MB="${ARCA_BENCH_MB:-1100}"   # files outside /data
DATA_MB="${ARCA_BENCH_DATA_MB:-256}"

cargo build --release -q -p arca-cli
ARCA="$PWD/target/release/arca"

t() { # t NAME CMD... : wall seconds of CMD
  local name="$1"; shift
  local s e
  s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N)
  printf '%s %.2f\n' "$name" "$(echo "$e - $s" | bc)" | tee -a "$WORK/times.txt" >&2
}

if [ ! -f "$WORK/image.tar" ]; then
  echo "bench: building the test image in $WORK" >&2
  ROOT="$WORK/rootfs"
  rm -rf "$ROOT"; mkdir -p "$ROOT/usr" "$ROOT/data" "$ROOT/bin"
  # Real files: /usr/lib and /usr/share, up to SIZE_MB.
  ( cd / && find usr/lib usr/share -type f -size +0 -printf '%s %p\n' 2>/dev/null ) | sort -k2 |
    awk -v max=$((SIZE_MB * 1024 * 1024)) '{ t += $1; if (t <= max) print $2 }' > "$WORK/files.txt"
  tar -C / -cf - -T "$WORK/files.txt" | tar -C "$ROOT" -xf -
  # DATA: semi-compressible records (log-like text), the directory the second run encrypts.
  for i in $(seq 1 $((DATA_MB / 16))); do
    openssl rand -hex $((4 * 1024 * 1024)) | fold -w 120 | sed "s/^/record $i: /" | head -c $((16 * 1024 * 1024)) > "$ROOT/data/part-$i.log"
  done
  gcc -static -O2 -o "$ROOT/bin/app" -x c - <<'C'
#include <stdio.h>
int main(void) { puts("bench app"); return 0; }
C
  gcc -static -O2 -o "$WORK/launcher" -x c - <<'C'
#include <stdio.h>
int main(void) { puts("bench launcher"); return 0; }
C
  tar -C "$ROOT" --numeric-owner -cf "$WORK/rootfs.tar" .
  podman import --change 'CMD ["/bin/app"]' "$WORK/rootfs.tar" localhost/arca-bench:1 >/dev/null
  podman save --format docker-archive -o "$WORK/image.tar" localhost/arca-bench:1 >/dev/null
  podman rmi -f localhost/arca-bench:1 >/dev/null
  rm -f "$WORK/rootfs.tar"
fi
ROOT="$WORK/rootfs"
FILES_BYTES=$(du -sb "$ROOT" | cut -f1)
KEY="$WORK/signing.pem"
[ -f "$KEY" ] || "$ARCA" keygen -o "$KEY" >/dev/null 2>&1 || cp keys/arca-dev-coordinator.pem "$KEY"
head -c 16 /dev/urandom > "$WORK/pf.key"
rm -f "$WORK/times.txt"
uptime | tee "$WORK/uptime.txt" >&2

# Baseline pieces.
LAYER=$(tar -tf "$WORK/image.tar" | grep -E '^[0-9a-f]{64}\.tar$' | head -1)
tar -C "$WORK" -xf "$WORK/image.tar" "$LAYER"
hash_files() { find "$ROOT" -type f -print0 | xargs -0 -n 256 openssl dgst -sha256 >/dev/null; }
t hash hash_files
t gzip1 sh -c "gzip -6 -c '$WORK/$LAYER' > /dev/null"
t pigz2 sh -c "pigz -6 -p 2 -c '$WORK/$LAYER' > /dev/null"
t zstd1 sh -c "zstd -3 -T1 -q -c '$WORK/$LAYER' > /dev/null"
t zstd2 sh -c "zstd -3 -T2 -q -c '$WORK/$LAYER' > /dev/null"
t skopeo sh -c "rm -rf '$WORK/skopeo' && skopeo copy -q docker-archive:$WORK/image.tar oci:$WORK/skopeo:x"

conv() { # conv NAME ARGS...
  local name="$1"; shift
  rm -rf "$WORK/out-$name" "$WORK/ctx-$name"
  t "$name" "$ARCA" convert "docker-archive:$WORK/image.tar" "oci:$WORK/out-$name:x" \
    --launcher "$WORK/launcher" --sign-key "$KEY" "$@"
}
conv gz-j1 --compression gzip -j 1
conv gz-j2 --compression gzip -j 2
conv zst-j1 --compression zstd -j 1
conv zst-j2 --compression zstd -j 2
conv gz-enc-j1 --compression gzip -j 1 --encrypt /data --pf-key "$WORK/pf.key"
conv gz-enc-j2 --compression gzip -j 2 --encrypt /data --pf-key "$WORK/pf.key"
conv zst-enc-j1 --compression zstd -j 1 --encrypt /data --pf-key "$WORK/pf.key"
conv zst-enc-j2 --compression zstd -j 2 --encrypt /data --pf-key "$WORK/pf.key"

# The rewritten layer of the encrypted conversion, compressed once by the CLI tools (its baseline).
ENC_BLOB=$(python3 - "$WORK/out-gz-enc-j1" <<'PY'
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs/sha256", idx["manifests"][0]["digest"][7:])))
print(os.path.join(d, "blobs/sha256", m["layers"][0]["digest"][7:]))
PY
)
gzip -dc "$ENC_BLOB" > "$WORK/enc-layer.tar"
t gzip1-enc sh -c "gzip -6 -c '$WORK/enc-layer.tar' > /dev/null"
t pigz2-enc sh -c "pigz -6 -p 2 -c '$WORK/enc-layer.tar' > /dev/null"
t zstd1-enc sh -c "zstd -3 -T1 -q -c '$WORK/enc-layer.tar' > /dev/null"
t zstd2-enc sh -c "zstd -3 -T2 -q -c '$WORK/enc-layer.tar' > /dev/null"
rm -f "$WORK/enc-layer.tar" "$WORK/$LAYER"

python3 - "$WORK/times.txt" "$FILES_BYTES" "$(cat "$WORK/uptime.txt")" <<'PY'
import sys
t = dict(l.split() for l in open(sys.argv[1]))
t = {k: float(v) for k, v in t.items()}
gib = int(sys.argv[2]) / 2**30
print(f"Image: {gib:.2f} GiB of files; load: {sys.argv[3].strip()}\n")
print("| case | arca convert (s) | baseline (s) | ratio |")
print("|---|---|---|---|")
rows = [
    ("gzip, 1 thread", "gz-j1", t["hash"] + t["gzip1"]),
    ("gzip, 2 threads", "gz-j2", t["hash"] + t["pigz2"]),
    ("zstd, 1 thread", "zst-j1", t["hash"] + t["zstd1"]),
    ("zstd, 2 threads", "zst-j2", t["hash"] + t["zstd2"]),
    ("gzip + --encrypt /data, 1 thread", "gz-enc-j1", t["hash"] + t["gzip1-enc"]),
    ("gzip + --encrypt /data, 2 threads", "gz-enc-j2", t["hash"] + t["pigz2-enc"]),
    ("zstd + --encrypt /data, 1 thread", "zst-enc-j1", t["hash"] + t["zstd1-enc"]),
    ("zstd + --encrypt /data, 2 threads", "zst-enc-j2", t["hash"] + t["zstd2-enc"]),
]
for name, key, base in rows:
    print(f"| {name} | {t[key]:.2f} | {base:.2f} | {t[key] / base:.2f}x |")
print(f"\nBaseline parts: openssl dgst -sha256 over the files {t['hash']:.2f} s; gzip -6 {t['gzip1']:.2f} s, "
      f"pigz -6 -p 2 {t['pigz2']:.2f} s, zstd -3 -T1 {t['zstd1']:.2f} s, zstd -3 -T2 {t['zstd2']:.2f} s "
      f"(encrypted layer: gzip {t['gzip1-enc']:.2f} s, pigz {t['pigz2-enc']:.2f} s, zstd {t['zstd1-enc']:.2f}/{t['zstd2-enc']:.2f} s).")
print(f"I/O reference: skopeo copy docker-archive -> oci (gzip, its default) {t['skopeo']:.2f} s.")
PY
