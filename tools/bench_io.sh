#!/usr/bin/env bash
# tools/bench_io.sh — zinf's NVMe engine against fio (or, without fio, against a
# plain liburing reference loop), same file size, block size, queue depth and
# O_DIRECT, runs interleaved so drift in the disk hits every tool alike.
# Usage: tools/bench_io.sh DIR [SIZE_MB=1024] [BS=1048576] [QD=8] [RUNS=5] [BUILD=build]
# Prints one line per run and per tool, then medians and the engine/fio ratio.
set -euo pipefail
dir=${1:?usage: tools/bench_io.sh DIR [SIZE_MB] [BS] [QD] [RUNS] [BUILD]}
size_mb=${2:-1024}; bs=${3:-1048576}; qd=${4:-8}; runs=${5:-5}
root=$(cd "$(dirname "$0")/.." && pwd)
build=${6:-$root/build}
bench=$build/zinf_io_bench
if [[ ! -x $bench ]]; then
  cmake --build "$build" --target zinf_io_bench >/dev/null
fi
mkdir -p "$dir"
results=$(mktemp)
trap 'rm -f "$results" "$dir/.fio-bench.dat"' EXIT

echo "machine: $(nproc) cores, $(uname -r); dir $dir on $(df -T "$dir" | awk 'NR==2{print $1" ("$2")"}')"
echo "file ${size_mb} MiB, block $bs B, queue depth $qd, O_DIRECT, $runs runs (write includes the final fdatasync)"

fio_gbps() {  # rw -> GB/s (1e9 B/s) from fio's JSON
  fio --name=zinf-cmp --filename="$dir/.fio-bench.dat" --size="${size_mb}M" --bs="$bs" --iodepth="$qd" \
      --ioengine=io_uring --direct=1 --rw="$1" --end_fsync=1 --output-format=json 2>/dev/null |
    python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]; print('%.3f' % (j['$2']['bw_bytes']/1e9))"
}

run_tool() {
  case $1 in
    fio)
      command -v fio >/dev/null || return 0
      local w r
      w=$(fio_gbps write write); r=$(fio_gbps read read)
      rm -f "$dir/.fio-bench.dat"
      echo "fio write_gbps $w read_gbps $r" ;;
    reference) "$bench" --dir "$dir" --size-mb "$size_mb" --bs "$bs" --qd "$qd" --runs 1 --mode reference ;;
    engine) "$bench" --dir "$dir" --size-mb "$size_mb" --bs "$bs" --qd "$qd" --runs 1 ;;
    engine-noreg) "$bench" --dir "$dir" --size-mb "$size_mb" --bs "$bs" --qd "$qd" --runs 1 --no-register |
                    sed 's/^engine/engine-noreg/' ;;
    engine-crc) "$bench" --dir "$dir" --size-mb "$size_mb" --bs "$bs" --qd "$qd" --runs 1 --checksums |
                  sed 's/^engine/engine-crc/' ;;
  esac
}

tools=(fio reference engine engine-noreg engine-crc)
for ((i = 0; i < runs; i++)); do
  for ((k = 0; k < ${#tools[@]}; k++)); do  # rotate the order each run: no tool always goes first
    run_tool "${tools[(i + k) % ${#tools[@]}]}" | tee -a "$results"
  done
done

python3 - "$results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    rows.setdefault(f[0], []).append((float(f[2]), float(f[4]), float(f[6]) if len(f) > 6 else float("nan")))
med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in rows.items()}
print("\nmedian over %d runs  write GB/s  read GB/s  CPU s/GB (process)" % len(next(iter(rows.values()))))
for k, (w, r, c) in med.items():
    print(f"  {k:<18} {w:8.3f}  {r:9.3f}  {c:8.3f}")
base = "fio" if "fio" in med else "reference"
w0, r0, _ = med[base]
w1, r1, _ = med["engine"]
print(f"engine / {base}: write {w1 / w0:.2f}, read {r1 / r0:.2f}")
PY
