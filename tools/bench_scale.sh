#!/usr/bin/env bash
# Implements: issue 5's scale run: the largest model ZeRO-Infinity trains
# (3 steps, fp32 master weights) on this host. Reads the free RAM and the
# free space on the NVMe path, places the state so it fits — bf16 parameters
# and (grad-accum 1) bf16 gradients in pinned CPU memory, fp32 master
# weights and Adam moments split between CPU memory (max_in_cpu) and NVMe —
# and trains; prints the placement, step times, losses and peaks.
# Usage: tools/bench_scale.sh [ZINF]     (default build-gpu/zinf)
#   HIDDEN=4096 LAYERS=50 HEADS=32 NVME=/tmp/zinf-nvme OUT=/tmp/scale tools/bench_scale.sh
#   DEVICE=cpu PRECISION=fp32 HIDDEN=64 LAYERS=2 HEADS=2 SEQ=64 tools/bench_scale.sh build/zinf  # smoke test
set -euo pipefail
cd "$(dirname "$0")/.."
ZINF=${1:-build-gpu/zinf}
HIDDEN=${HIDDEN:-4096}
LAYERS=${LAYERS:-50}
HEADS=${HEADS:-32}
SEQ=${SEQ:-1024}
BATCH=${BATCH:-1}
STEPS=${STEPS:-3}
DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
NVME=${NVME:-/tmp/zinf-nvme}
OUT=${OUT:-$(mktemp -d /tmp/zinf-scale.XXXXXX)}
RESERVE_RAM_GB=${RESERVE_RAM_GB:-12}    # kept free for the OS, CUDA, LibTorch and buffers
RESERVE_DISK_GB=${RESERVE_DISK_GB:-4}
mkdir -p "$OUT" "$NVME"

read -r params max_in_cpu nvme_gb ram_gb plan_ok < <(python3 - "$HIDDEN" "$LAYERS" "$SEQ" "$NVME" "$RESERVE_RAM_GB" \
    "$RESERVE_DISK_GB" "$PRECISION" <<'PY'
import os, sys
h, layers, seq = map(int, sys.argv[1:4])
nvme, reserve_ram, reserve_disk, precision = sys.argv[4], float(sys.argv[5]), float(sys.argv[6]), sys.argv[7]
vocab = 50257
P = vocab * h + seq * h + layers * (12 * h * h + 13 * h) + 2 * h
st = os.statvfs(nvme)
disk = st.f_bavail * st.f_frsize
ram = int([l for l in open("/proc/meminfo") if l.startswith("MemAvailable")][0].split()[1]) * 1024
half = 2 if precision != "fp32" else 4
# bf16 parameters + bf16 gradients (grad-accum 1) in CPU memory; the 12 B/param
# of fp32 master + moments on NVMe as far as the disk allows, the rest in RAM.
on_nvme = max(0, min(P, int((disk - reserve_disk * 1e9) // 12)))
in_cpu = P - on_nvme
need_ram = 2 * half * P + 12 * in_cpu + reserve_ram * 1e9
print(P, in_cpu, f"{12 * on_nvme / 1e9:.1f}", f"{need_ram / 1e9:.1f}", "yes" if need_ram <= ram else f"no(RAM {ram / 1e9:.0f} GB)")
PY
)
echo "scale: $params parameters (hidden $HIDDEN, layers $LAYERS); optimizer state: $max_in_cpu elements in RAM, $nvme_gb GB on NVMe ($NVME); RAM needed ~$ram_gb GB: fits $plan_ok"
[[ $plan_ok == yes ]] || { echo "scale: does not fit this host; nothing run"; exit 3; }

dir="$OUT/run"
rm -rf "$dir"
start=$(date +%s)
set +e
/usr/bin/time -f "%M" -o "$OUT/maxrss_kb" "$ZINF" train --device "$DEVICE" --precision "$PRECISION" \
  --zero-stage infinity --nvme-offload-path "$NVME" --no-nvme-offload-params --no-nvme-offload-gradients \
  --optimizer-max-in-cpu "$max_in_cpu" --model gpt2-small --hidden-size "$HIDDEN" --layers "$LAYERS" \
  --heads "$HEADS" --seq-len "$SEQ" --batch-size "$BATCH" --steps "$STEPS" --no-save --log-every 1 \
  --output-dir "$dir" >"$OUT/train.out" 2>"$OUT/train.err"
rc=$?
set -e
echo "scale: zinf train exit $rc after $(($(date +%s) - start)) s"
tail -5 "$OUT/train.err" | sed 's/^/    /'
[[ $rc == 0 ]] || exit $rc
python3 - "$dir/metrics.jsonl" "$dir/summary.json" <<'PY'
import json, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
s = json.load(open(sys.argv[2]))
print("| step | loss | s | NVMe read GB | NVMe write GB |")
print("| ---: | ---: | ---: | ---: | ---: |")
for m in steps:
    print(f"| {m['step']} | {m['loss']:.4f} | {m['step_time_s']:.1f} | {m['nvme_read_bytes_step'] / 1e9:.1f} | "
          f"{m['nvme_write_bytes_step'] / 1e9:.1f} |")
print(f"parameters {s['parameters'] / 1e9:.2f}B, peak GPU {s['peak_gpu_bytes'] / 2**30:.2f} GiB, peak RSS "
      f"{s['peak_rss_bytes'] / 2**30:.1f} GiB, NVMe reserved {s.get('nvme_peak_bytes', 0) / 1e9:.1f} GB, "
      f"wall {s['wall_time_s']:.0f} s")
PY
