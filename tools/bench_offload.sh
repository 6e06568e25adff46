#!/usr/bin/env bash
# Implements: the CPU-offload benchmarks of issue 5 (2a and 2b) on one GPU.
# The 1.4B model (24 layers, hidden 2048, 16 heads, seq 1024, micro-batch 8),
# bf16, at grad-accum 1 and 4, one run after the other on the same GPU:
#   zinf stage none            (in-GPU, for reference)
#   zinf infinity-cpu          (ZeRO-3, parameters and optimizer in pinned CPU memory; device
#                              gradient sums on "auto": on where they fit the GPU)
#   zinf infinity-cpu-dpu      (the same with --delayed-param-update)
#   zinf infinity-cpu-hsum     (infinity-cpu with --no-device-grad-accumulation: micro-batches added on the host)
#   zinf infinity-cpu-hsum-dpu (that with --delayed-param-update)
#   zinf infinity-cpu-dsum     (infinity-cpu with --device-grad-accumulation asked for)
#   zinf infinity-cpu-dsum-dpu (both asked for)
#   PyTorch FSDP2 + CPUOffloadPolicy   (bench/fsdp2_offload.py --mode fsdp2-offload)
#   plain in-GPU PyTorch       (bench/fsdp2_offload.py --mode plain)
# and prints a table of step time and TFLOP/s with the issue's two ratios:
#   2a: zinf infinity-cpu step time / FSDP2-offload step time at grad-accum 1 (target <= 0.45)
#   2b: zinf infinity-cpu TFLOP/s / plain PyTorch TFLOP/s at grad-accum 4    (target >= 0.6)
# zinf's metrics.jsonl of each run also holds h2d_bytes / d2h_bytes per step.
#
# Usage: tools/bench_offload.sh [ZINF_BINARY]      (default build-gpu/zinf)
#   STEPS=10 PYTHON=python3 OUT=/tmp/zinf-offload-bench tools/bench_offload.sh
#   DEVICE=cpu PRECISION=fp32 MODEL_Z="--model tiny" tools/bench_offload.sh build/zinf   # a smoke test without a GPU
#   GAS=4 STAGES="infinity-cpu infinity-cpu-dpu" MODES=plain tools/bench_offload.sh      # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
ZINF=${1:-${ZINF:-build-gpu/zinf}}
STEPS=${STEPS:-10}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/zinf-offload-bench.XXXXXX)}
mkdir -p "$OUT"
[[ -x "$ZINF" ]] || { echo "error: no zinf binary at $ZINF (build it, or pass its path)" >&2; exit 2; }

DEVICE=${DEVICE:-cuda}
PRECISION=${PRECISION:-bf16}
MODEL_Z=${MODEL_Z:-"--model gpt2-small --hidden-size 2048 --layers 24 --heads 16 --seq-len 1024 --batch-size 8"}
MODEL_P=${MODEL_P:-"--hidden-size 2048 --layers 24 --heads 16 --seq-len 1024 --batch-size 8"}
GAS=${GAS:-"1 4"}                                        # grad-accum values
STAGES=${STAGES:-"none infinity-cpu infinity-cpu-dpu"}   # zinf runs (dpu: --delayed-param-update)
MODES=${MODES:-"fsdp2-offload plain"}                    # PyTorch peers
rows=()
for ga in $GAS; do
  for stage in $STAGES; do
    dir="$OUT/zinf-$stage-ga$ga"
    rm -rf "$dir"
    case $stage in
      none) sopt="--zero-stage none" ;;
      infinity-cpu) sopt="--preset infinity-cpu" ;;
      infinity-cpu-dpu) sopt="--preset infinity-cpu --delayed-param-update" ;;
      infinity-cpu-hsum) sopt="--preset infinity-cpu --no-device-grad-accumulation" ;;
      infinity-cpu-hsum-dpu) sopt="--preset infinity-cpu --no-device-grad-accumulation --delayed-param-update" ;;
      infinity-cpu-dsum) sopt="--preset infinity-cpu --device-grad-accumulation" ;;
      infinity-cpu-dsum-dpu) sopt="--preset infinity-cpu --device-grad-accumulation --delayed-param-update" ;;
      *) echo "error: unknown stage $stage" >&2; exit 2 ;;
    esac
    echo "== zinf $stage, grad-accum $ga" >&2
    # shellcheck disable=SC2086
    if "$ZINF" train --device "$DEVICE" --precision "$PRECISION" $sopt $MODEL_Z --grad-accum "$ga" --steps "$STEPS" \
        --output-dir "$dir" --no-save --log-every 1 >"$dir.json"; then
      rows+=("zinf-$stage|$ga|$dir/summary.json")
    else
      echo "   zinf $stage failed (exit $?), see above" >&2
    fi
  done
  for mode in $MODES; do
    echo "== PyTorch $mode, grad-accum $ga" >&2
    # shellcheck disable=SC2086
    if "$PYTHON" bench/fsdp2_offload.py --mode "$mode" $MODEL_P --grad-accum "$ga" --steps "$STEPS" \
        >"$OUT/$mode-ga$ga.json"; then
      rows+=("pytorch-$mode|$ga|$OUT/$mode-ga$ga.json")
    else
      echo "   PyTorch $mode failed (exit $?), see above" >&2
    fi
  done
done

"$PYTHON" - "${rows[@]}" <<'PY'
import json, sys
def load(path):  # a JSON file, or the last line of a JSON-lines output
    text = open(path).read().strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return json.loads(text.splitlines()[-1])
res = {}
print("| impl | grad-accum | step time (s) | tokens/s | TFLOP/s | peak GPU memory | device grad sums |")
print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
for arg in sys.argv[1:]:
    impl, ga, path = arg.split("|")
    d = load(path)
    step_s = d.get("mean_step_s") or d["tokens_per_step"] / d["mean_tokens_per_s"]
    res[(impl, int(ga))] = (step_s, d["mean_tflops"])
    print(f"| {impl} | {ga} | {step_s:.3f} | {d['mean_tokens_per_s']:.0f} | {d['mean_tflops']:.1f} | "
          f"{d['peak_gpu_bytes'] / 2**30:.2f} GiB | {({True: 'on', False: 'off'}).get(d.get('device_grad_accumulation'), '')} |")
print()
print()
print("zinf timeline, mean seconds per step after the first (GPU busy = compute; idle = step - compute):")
print("| run | grad-accum | step | compute | GPU idle | h2d | d2h | grad accumulate | CPU optimizer | NVMe wait | fetch wait |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for arg in sys.argv[1:]:
    impl, ga, path = arg.split("|")
    if not impl.startswith("zinf-"):
        continue
    t = load(path).get("timeline_mean")
    if t:
        print(f"| {impl} | {ga} | {t['step_s']:.3f} | {t['compute_s']:.3f} | {t['gpu_idle_s']:.3f} | {t['h2d_s']:.3f} | "
              f"{t['d2h_s']:.3f} | {t['grad_accumulate_s']:.3f} | {t['optimizer_s']:.3f} | {t['nvme_wait_s']:.3f} | "
              f"{t['fetch_wait_s']:.3f} |")
print()
z1, f1 = res.get(("zinf-infinity-cpu", 1)), res.get(("pytorch-fsdp2-offload", 1))
if z1 and f1:
    r = z1[0] / f1[0]
    print(f"2a: zinf infinity-cpu / FSDP2-offload step time at grad-accum 1 = {r:.3f} ({'ok' if r <= 0.45 else 'ABOVE 0.45'})")
for impl in ("zinf-infinity-cpu", "zinf-infinity-cpu-dpu", "zinf-infinity-cpu-hsum", "zinf-infinity-cpu-hsum-dpu",
             "zinf-infinity-cpu-dsum", "zinf-infinity-cpu-dsum-dpu"):
    z4, p4 = res.get((impl, 4)), res.get(("pytorch-plain", 4))
    if z4 and p4:
        r = z4[1] / p4[1]
        print(f"2b: {impl} / plain PyTorch TFLOP/s at grad-accum 4 = {r:.3f} ({'ok' if r >= 0.6 else 'BELOW 0.6'})")
PY
