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
# Measures, does not assert. Record the output with `uptime` in BENCHMARKS.md. Every step records its wall time
# and its CPU time (user + sys of the command and its children, GNU time): on a machine shared with other work,
# wall times mostly measure the wait for a core, CPU times the work done. ARCA_BENCH_SKOPEO=0 skips the
# skopeo reference.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-$(mktemp -d /var/tmp/arca-bench.XXXXXX)}"
mkdir -p "$WORK"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${XDG_CONFIG_HOME:-$HOME/.config}/arca/containers.conf}"
SIZE_MB="${ARCA_BENCH_MB:-1100}"   # files outside /data
DATA_MB="${ARCA_BENCH_DATA_MB:-256}"

# ARCA_BIN: an already built `arca` (otherwise a release build). ARCA_BENCH_CODECS: codecs, in run order.
ARCA="${ARCA_BIN:-}"
if [ -z "$ARCA" ]; then
  cargo build --release -q -p arca-cli
  ARCA="$PWD/target/release/arca"
fi
CODECS="${ARCA_BENCH_CODECS:-zstd gzip}"

t() { # t NAME CMD... : wall seconds and CPU seconds (user + sys) of CMD
  local name="$1"; shift
  local s e cpu
  s=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$WORK/$name.cpu" "$@" >/dev/null 2>"$WORK/$name.err" ||
    { echo "bench: $name failed:" >&2; cat "$WORK/$name.err" >&2; exit 1; }
  e=$(date +%s.%N)
  cpu=$(awk '{ print $1 + $2 }' "$WORK/$name.cpu")
  printf '%s %.2f %.2f\n' "$name" "$(echo "$e - $s" | bc)" "$cpu" | tee -a "$WORK/times.txt" >&2
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

# Baseline pieces shared by every codec.
LAYER=$(tar -tf "$WORK/image.tar" | grep -E '^[0-9a-f]{64}\.tar$' | head -1)
tar -C "$WORK" -xf "$WORK/image.tar" "$LAYER"
t hash sh -c "find '$ROOT' -type f -print0 | xargs -0 -n 256 openssl dgst -sha256 >/dev/null"
if [ "${ARCA_BENCH_SKOPEO:-1}" != 0 ]; then
  t skopeo sh -c "rm -rf '$WORK/skopeo' && skopeo copy -q docker-archive:$WORK/image.tar oci:$WORK/skopeo:x"
  rm -rf "$WORK/skopeo"
fi

conv() { # conv NAME ARGS...
  local name="$1"; shift
  rm -rf "$WORK/out-$name" "$WORK/ctx-$name"
  t "$name" "$ARCA" convert "docker-archive:$WORK/image.tar" "oci:$WORK/out-$name:x" \
    --launcher "$WORK/launcher" --sign-key "$KEY" "$@"
  case $name in *-enc-j1) ;; *) rm -rf "$WORK/out-$name" ;; esac # disk: keep only what the baseline reads
}
first_layer() { # first_layer OCI_DIR: path of the first layer blob
  python3 - "$1" <<'PY'
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs/sha256", idx["manifests"][0]["digest"][7:])))
print(os.path.join(d, "blobs/sha256", m["layers"][0]["digest"][7:]))
PY
}
for codec in $CODECS; do
  case $codec in
    gzip) c1="gzip -6 -n -c"; c2="pigz -6 -n -p 2 -c"; dec="gzip -dc"; n=gz ;;
    zstd) c1="zstd -3 -T1 -q -c"; c2="zstd -3 -T2 -q -c"; dec="zstd -dc"; n=zst ;;
    *) echo "unknown codec $codec" >&2; exit 2 ;;
  esac
  # -n: no name or timestamp (as arca writes gzip; gzip exits 2 on a timestamp it cannot store).
  t "$codec-1" sh -c "$c1 < '$WORK/$LAYER' > /dev/null"
  t "$codec-2" sh -c "$c2 < '$WORK/$LAYER' > /dev/null"
  conv "$n-j1" --compression "$codec" -j 1
  conv "$n-j2" --compression "$codec" -j 2
  conv "$n-enc-j1" --compression "$codec" -j 1 --encrypt /data --pf-key "$WORK/pf.key"
  conv "$n-enc-j2" --compression "$codec" -j 2 --encrypt /data --pf-key "$WORK/pf.key"
  # The rewritten layer of the encrypted conversion, compressed once by the CLI tools (its baseline).
  $dec "$(first_layer "$WORK/out-$n-enc-j1")" > "$WORK/enc-layer.tar"
  rm -rf "$WORK/out-$n-enc-j1"
  t "$codec-1-enc" sh -c "$c1 < '$WORK/enc-layer.tar' > /dev/null"
  t "$codec-2-enc" sh -c "$c2 < '$WORK/enc-layer.tar' > /dev/null"
  rm -f "$WORK/enc-layer.tar"
  rm -rf "$WORK"/out-* "$WORK/skopeo"
done
rm -f "$WORK/$LAYER"
uptime | tee "$WORK/uptime-end.txt" >&2

python3 - "$WORK/times.txt" "$FILES_BYTES" "$(cat "$WORK/uptime.txt")" "$(cat "$WORK/uptime-end.txt")" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
t = {r[0]: float(r[1]) for r in rows}
cpu = {r[0]: float(r[2]) for r in rows if len(r) > 2}
gib = int(sys.argv[2]) / 2**30
print(f"Image: {gib:.2f} GiB of files; load at start: {sys.argv[3].strip()}; at end: {sys.argv[4].strip()}\n")
print("| case | arca convert wall (s) | baseline wall: openssl dgst + codec CLI (s) | wall ratio "
      "| arca CPU (s) | baseline CPU (s) | CPU ratio |")
print("|---|---|---|---|---|---|---|")
for codec, n in (("gzip", "gz"), ("zstd", "zst")):
    if f"{n}-j1" not in t:
        continue
    tools = {"gzip": ("gzip -6", "pigz -6 -p 2"), "zstd": ("zstd -3 -T1", "zstd -3 -T2")}[codec]
    for enc, suffix, what in (("", "", ""), ("-enc", "-enc", " + --encrypt /data")):
        for j in (1, 2):
            key = f"{n}{enc}-j{j}"
            base = t["hash"] + t[f"{codec}-{j}{suffix}"]
            cpus = ""
            if key in cpu:
                cbase = cpu["hash"] + cpu[f"{codec}-{j}{suffix}"]
                cpus = f" {cpu[key]:.2f} | {cbase:.2f} | {cpu[key] / cbase:.2f}x |"
            print(f"| {codec}{what}, {j} thread{'s' if j > 1 else ''} | {t[key]:.2f} | {base:.2f} "
                  f"(hash {t['hash']:.2f} + {tools[j - 1]} {t[f'{codec}-{j}{suffix}']:.2f}) | {t[key] / base:.2f}x |"
                  + cpus)
if "skopeo" in t:
    print(f"\nI/O reference: skopeo copy docker-archive -> oci (recompresses with gzip, its default) {t['skopeo']:.2f} s.")
PY
