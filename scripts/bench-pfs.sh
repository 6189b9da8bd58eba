#!/usr/bin/env bash
# Benchmark of the protected-files FUSE shield (issue 4), measured side by side in one run:
#   arca      — `arca fs mount` (Gramine format, AES-128-GCM, rollback state), release build
#   gocryptfs — the encrypted-FUSE peer (Debian package)
#   bindfs    — a plain FUSE passthrough of the same disk (the limit for any FUSE file system)
# Workloads (fio, psync): sequential write of 1 GiB (fsync at end), sequential read of 1 GiB (cold cache),
# random 4 KiB reads over that file (cold cache, fixed time), and many small files (2000 × 4 KiB written,
# then read back cold).  Needs root (drop_caches, FUSE).  The three file systems run in REPS interleaved
# repetitions (the order rotates each repetition, so drift of the disk or the machine during a run does not
# favour one of them); the table gives the median of each workload over the repetitions, followed by every
# repetition's raw figures.  Record the output in BENCHMARKS.md with `uptime`.
#
#   scripts/bench-pfs.sh [WORKDIR]        (default: a new directory under /var/tmp, removed after a
#                                          successful run; a WORKDIR you name is kept)
#   SIZE=256M REPS=1 scripts/bench-pfs.sh  (smaller run for a quick look)
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE=${SIZE:-1G}
RUNTIME=${RUNTIME:-15}
NFILES=${NFILES:-2000}
REPS=${REPS:-3}
if [ -n "${1:-}" ]; then WORK=$1; OWN_WORK=0; else WORK=$(mktemp -d /var/tmp/arca-bench-pfs.XXXXXX); OWN_WORK=1; fi
ARCA=${ARCA:-target/release/arca}

need=()
for t in fio gocryptfs bindfs fusermount3 python3; do command -v "$t" >/dev/null || need+=("$t"); done
if [ ${#need[@]} -gt 0 ]; then
  pkgs=("${need[@]/fusermount3/fuse3}")
  echo "bench-pfs: installing ${pkgs[*]}" >&2
  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${pkgs[@]}"
fi
[ -x "$ARCA" ] || cargo build --release -p arca-cli

mounts=()
cleanup() {
  local rc=$?
  for m in "${mounts[@]}"; do fusermount3 -uz "$m" 2>/dev/null || true; done
  [ -n "${ARCA_PID:-}" ] && kill "$ARCA_PID" 2>/dev/null || true
  # A work directory the script made goes after a successful run; after a failure it stays for its logs.
  if [ "$rc" -eq 0 ] && [ "$OWN_WORK" = 1 ]; then
    wait "${ARCA_PID:-}" 2>/dev/null || true
    rm -rf "$WORK"
  elif [ "$rc" -ne 0 ]; then
    echo "bench-pfs: failed; work directory kept: $WORK" >&2
  fi
}
trap cleanup EXIT

wait_mount() { for _ in $(seq 100); do grep -q " $1 fuse" /proc/mounts && return 0; sleep 0.1; done; echo "no mount at $1" >&2; exit 1; }

mkdir -p "$WORK"/{arca.enc,arca.mnt,gocryptfs.enc,gocryptfs.mnt,plain,bindfs.mnt}
head -c 16 /dev/urandom > "$WORK/arca.key"
"$ARCA" fs mount --key "$WORK/arca.key" "$WORK/arca.enc" "$WORK/arca.mnt" 2>"$WORK/arca.log" &
ARCA_PID=$!
wait_mount "$WORK/arca.mnt"; mounts+=("$WORK/arca.mnt")
echo pass > "$WORK/gocryptfs.pass"
gocryptfs -q -init -passfile "$WORK/gocryptfs.pass" -scryptn 10 "$WORK/gocryptfs.enc"
gocryptfs -q -passfile "$WORK/gocryptfs.pass" "$WORK/gocryptfs.enc" "$WORK/gocryptfs.mnt"
wait_mount "$WORK/gocryptfs.mnt"; mounts+=("$WORK/gocryptfs.mnt")
bindfs "$WORK/plain" "$WORK/bindfs.mnt"
wait_mount "$WORK/bindfs.mnt"; mounts+=("$WORK/bindfs.mnt")

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
fio_bw() { # prints MB/s (or IOPS for randread) from fio's JSON
  fio --output-format=json "$@" | python3 -c '
import json,sys
j=json.load(sys.stdin)["jobs"][0]
rw="write" if j["write"]["io_bytes"] else "read"
print("%.1f %.0f" % (j[rw]["bw_bytes"]/1e6, j[rw]["iops"]))'
}

small_files() { # prints files/s for write, then for read
  python3 - "$1" "$NFILES" <<'PY'
import os, sys, time, subprocess
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(d, "small"), exist_ok=True)
blob = os.urandom(4096)
t = time.perf_counter()
for i in range(n):
    with open(os.path.join(d, "small", "f%05d" % i), "wb") as f:
        f.write(blob)
wt = time.perf_counter() - t
subprocess.run(["sh", "-c", "sync; echo 3 > /proc/sys/vm/drop_caches"], check=True)
t = time.perf_counter()
for i in range(n):
    with open(os.path.join(d, "small", "f%05d" % i), "rb") as f:
        assert f.read() == blob
rt = time.perf_counter() - t
print("%.0f %.0f" % (n / wt, n / rt))
PY
}

declare -A R
FSS=(arca gocryptfs bindfs)
for rep in $(seq "$REPS"); do
  for i in 0 1 2; do
    fs=${FSS[$(((i + rep - 1) % 3))]}
    m="$WORK/$fs.mnt"
    common=(--name=b --filename="$m/big" --ioengine=psync --size="$SIZE")
    R[$fs.seqw.$rep]=$(fio_bw "${common[@]}" --rw=write --bs=1M --end_fsync=1 | cut -d' ' -f1)
    drop
    R[$fs.seqr.$rep]=$(fio_bw "${common[@]}" --rw=read --bs=1M | cut -d' ' -f1)
    drop
    R[$fs.randr.$rep]=$(fio_bw "${common[@]}" --rw=randread --bs=4k --time_based --runtime="$RUNTIME" | cut -d' ' -f2)
    rm -f "$m/big"
    read -r sw sr < <(small_files "$m")
    R[$fs.smallw.$rep]=$sw; R[$fs.smallr.$rep]=$sr
    rm -rf "$m/small"
  done
done

median() { python3 -c "import statistics,sys; print('%g' % statistics.median(float(a) for a in sys.argv[1:]))" "$@"; }
reps() { local fs=$1 k=$2 r out=(); for r in $(seq "$REPS"); do out+=("${R[$fs.$k.$r]}"); done; echo "${out[@]}"; }
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }
WORKLOADS=("seqw:sequential write MB/s" "seqr:sequential read MB/s" "randr:random 4 KiB read IOPS" "smallw:small files written/s" "smallr:small files read/s")
echo "# bench-pfs: SIZE=$SIZE RUNTIME=${RUNTIME}s NFILES=$NFILES REPS=$REPS $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "Median of $REPS interleaved repetitions:"
printf '| workload | arca | gocryptfs | bindfs (passthrough) | arca / gocryptfs | arca / passthrough |\n|---|---|---|---|---|---|\n'
for w in "${WORKLOADS[@]}"; do
  k=${w%%:*}; label=${w#*:}
  for fs in "${FSS[@]}"; do
    # shellcheck disable=SC2046
    R[$fs.$k]=$(median $(reps "$fs" "$k"))
  done
  printf '| %s | %s | %s | %s | %s× | %s× |\n' "$label" "${R[arca.$k]}" "${R[gocryptfs.$k]}" "${R[bindfs.$k]}" \
    "$(ratio "${R[arca.$k]}" "${R[gocryptfs.$k]}")" "$(ratio "${R[arca.$k]}" "${R[bindfs.$k]}")"
done
echo
echo "Every repetition (arca / gocryptfs / bindfs, and arca / gocryptfs):"
printf '| workload | rep | arca | gocryptfs | bindfs | arca / gocryptfs |\n|---|---|---|---|---|---|\n'
for w in "${WORKLOADS[@]}"; do
  k=${w%%:*}; label=${w#*:}
  for r in $(seq "$REPS"); do
    printf '| %s | %s | %s | %s | %s | %s× |\n' "$label" "$r" "${R[arca.$k.$r]}" "${R[gocryptfs.$k.$r]}" \
      "${R[bindfs.$k.$r]}" "$(ratio "${R[arca.$k.$r]}" "${R[gocryptfs.$k.$r]}")"
  done
done
