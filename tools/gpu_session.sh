#!/usr/bin/env bash
# Implements: one working session on the GPU host in a single call: build
# (CUDA), the test suite, and the benchmarks, phase by phase, each phase's
# log under $OUT, and a short table of results printed last (the device tool
# returns the end of the output). Phases, in the order given by PHASES:
#   build    cmake + ninja into build-gpu (everything, benchmarks included)
#   test     the whole ctest suite (gpu suite included), 8 at a time
#   offload  tools/bench_offload.sh: 1.4B, zinf in-GPU / infinity-cpu vs
#            FSDP2 + CPUOffloadPolicy / plain PyTorch, grad-accum 1 and 4
#   nvme     validate-nvme --bench, then a 3-step infinity (NVMe) run of the
#            1.4B model: step time against the disk floor
#   scale    tools/bench_scale.sh: the largest model infinity trains
#   planner  tools/bench_planner.sh (when present): predicted vs measured
# Usage: OUT=/tmp/o PHASES="build test offload" tools/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/zinf-gpu-session}
PHASES=${PHASES:-build test offload nvme}
NVME=${NVME:-/tmp/zinf-nvme}
mkdir -p "$OUT"
summary="$OUT/summary.md"
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }

# shellcheck disable=SC1091
[[ -f .gpu-deps/gpu-env.sh ]] && source .gpu-deps/gpu-env.sh
ZINF=build-gpu/zinf
export PYTHONUNBUFFERED=1

phase_build() {
  cmake -S . -B build-gpu -G Ninja $ZINF_GPU_CMAKE_ARGS >"$OUT/build.log" 2>&1 &&
    ninja -C build-gpu >>"$OUT/build.log" 2>&1
}

phase_test() {
  ctest --test-dir build-gpu -j 8 --timeout 240 --output-on-failure >"$OUT/test.log" 2>&1
  local rc=$?
  grep -E "tests passed|tests failed|Failed|\*\*\*" "$OUT/test.log" | tail -8 | sed 's/^/    /' | tee -a "$summary"
  return $rc
}

phase_offload() {
  OUT="$OUT/offload" STEPS=${STEPS:-6} tools/bench_offload.sh "$ZINF" >"$OUT/offload.md" 2>"$OUT/offload.log"
  local rc=$?
  cat "$OUT/offload.md" | tee -a "$summary"
  return $rc
}

phase_nvme() {
  rm -rf "$NVME" && mkdir -p "$NVME"
  "$ZINF" validate-nvme "$NVME" --bench --bench-size-mb 4096 --json >"$OUT/validate.json" 2>"$OUT/nvme.log" || return 1
  local dir="$OUT/nvme-run"
  rm -rf "$dir"
  "$ZINF" train --device cuda --precision bf16 --zero-stage infinity --nvme-offload-path "$NVME" \
    --model gpt2-small --hidden-size 2048 --layers 24 --heads 16 --seq-len 1024 --batch-size 8 --steps 3 \
    --no-save --log-every 1 --output-dir "$dir" >>"$OUT/nvme.log" 2>&1 || return 1
  python3 - "$OUT/validate.json" "$dir/metrics.jsonl" "$dir/summary.json" <<'PY' | tee -a "$summary"
import json, sys
v = json.load(open(sys.argv[1]))
steps = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
s = json.load(open(sys.argv[3]))
w, r = v["write_gbps"], v["read_gbps"]
print(f"validate-nvme --bench: write {w:.2f} GB/s, read {r:.2f} GB/s")
print("| step | s | NVMe read GB | NVMe write GB | floor s | step / floor |")
print("| ---: | ---: | ---: | ---: | ---: | ---: |")
for m in steps:
    rb, wb = m["nvme_read_bytes_step"] / 1e9, m["nvme_write_bytes_step"] / 1e9
    floor = rb / r + wb / w
    print(f"| {m['step']} | {m['step_time_s']:.2f} | {rb:.1f} | {wb:.1f} | {floor:.2f} | {m['step_time_s'] / floor:.2f} |")
t = s.get("timeline_mean", {})
print("timeline (mean of steps 2-3): " + ", ".join(f"{k} {v:.2f}" for k, v in t.items()))
print(f"peak GPU {s['peak_gpu_bytes'] / 2**30:.2f} GiB, peak RSS {s['peak_rss_bytes'] / 2**30:.2f} GiB, "
      f"NVMe reserved {s.get('nvme_peak_bytes', 0) / 1e9:.1f} GB, losses {[round(m['loss'], 4) for m in steps]}")
PY
}

phase_scale() {
  [[ -x tools/bench_scale.sh ]] || { note "scale: tools/bench_scale.sh missing"; return 1; }
  OUT="$OUT/scale" NVME="$NVME" tools/bench_scale.sh "$ZINF" 2>"$OUT/scale.log" | tee -a "$summary"
}

phase_planner() {
  [[ -x tools/bench_planner.sh ]] || { note "planner: tools/bench_planner.sh missing"; return 1; }
  tools/bench_planner.sh "$ZINF" "$OUT/planner" 2>"$OUT/planner.log" | tee -a "$summary"
}

note "# GPU session $(date -u +%FT%TZ): $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null | head -1), $(nproc) cores, $(free -g | awk '/Mem/ {print $2}') GiB RAM, $(df -h /tmp | awk 'NR==2 {print $4}') free on /tmp"
status=0
for p in $PHASES; do
  start=$(date +%s)
  echo "== $p" >&2
  "phase_$p"
  rc=$?
  note "phase $p: exit $rc, $(($(date +%s) - start)) s"
  ((rc == 0)) || status=1
  [[ $p == build && $rc != 0 ]] && { tail -30 "$OUT/build.log"; break; }
done
# Small enough to come back: the runs' metrics and summaries, without checkpoints.
tar -czf "$OUT/runs.tar.gz" --exclude='*.safetensors' --exclude='checkpoints' \
  -C "$OUT" $(cd "$OUT" && ls -d offload nvme-run scale planner 2>/dev/null) 2>/dev/null
echo
cat "$summary"
exit $status
