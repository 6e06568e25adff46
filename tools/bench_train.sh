#!/usr/bin/env bash
# Implements: the stage-none speed benchmark of issue 4 (docs/benchmarks.md).
# Runs `zinf train` (stage none, bf16, batch 8 x 1024 tokens) and the plain
# PyTorch eager reference (bench/train_reference.py) for gpt2-small (124M) and
# a 1.4B model (24 layers, hidden 2048, 16 heads), one after the other on the
# same GPU, and prints a table of tokens/s, TFLOP/s, peak GPU memory and the
# zinf / reference ratio (the issue asks for >= 0.9).
#
# Usage: tools/bench_train.sh [ZINF_BINARY]      (default build-gpu/zinf)
#   STEPS=30 PYTHON=python3 OUT=/tmp/zinf-bench tools/bench_train.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ZINF=${1:-${ZINF:-build-gpu/zinf}}
STEPS=${STEPS:-30}
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d /tmp/zinf-bench.XXXXXX)}
[[ -x "$ZINF" ]] || { echo "error: no zinf binary at $ZINF (build it, or pass its path)" >&2; exit 2; }

# name | zinf model options | reference options
CASES=(
  "gpt2-small (124M)|--model gpt2-small|--hidden-size 768 --layers 12 --heads 12"
  "1.4B (24 x 2048, 16 heads)|--model gpt2-small --hidden-size 2048 --layers 24 --heads 16|--hidden-size 2048 --layers 24 --heads 16"
)
COMMON_REF="--seq-len 1024 --vocab-size 50304 --batch-size 8 --steps $STEPS"

results=()
for case in "${CASES[@]}"; do
  IFS='|' read -r name zopts ropts <<<"$case"
  dir="$OUT/$(echo "$name" | tr -c 'a-zA-Z0-9.\n' '_')"
  rm -rf "$dir"
  echo "== $name: zinf train" >&2
  # shellcheck disable=SC2086
  "$ZINF" train --device cuda --precision bf16 --zero-stage none $zopts --seq-len 1024 --batch-size 8 \
      --steps "$STEPS" --output-dir "$dir" --keep-checkpoints 1 --log-every 10 >"$dir.zinf.json"
  echo "== $name: PyTorch eager reference" >&2
  # shellcheck disable=SC2086
  "$PYTHON" bench/train_reference.py $ropts $COMMON_REF >"$dir.ref.json"
  results+=("$name|$dir/summary.json|$dir.ref.json")
done

"$PYTHON" - "${results[@]}" <<'PY'
import json, sys
print("| model | impl | tokens/s | TFLOP/s | peak GPU memory |")
print("| --- | --- | ---: | ---: | ---: |")
ratios = []
for arg in sys.argv[1:]:
    name, zpath, rpath = arg.split("|")
    z = json.load(open(zpath))
    r = json.loads(open(rpath).read().strip().splitlines()[-1])
    for impl, d in (("zinf", z), (r["impl"], r)):
        print(f"| {name} | {impl} | {d['mean_tokens_per_s']:.0f} | {d['mean_tflops']:.1f} | {d['peak_gpu_bytes'] / 2**30:.2f} GiB |")
    ratios.append((name, z["mean_tokens_per_s"] / r["mean_tokens_per_s"]))
print()
for name, ratio in ratios:
    print(f"{name}: zinf / reference tokens/s = {ratio:.3f} ({'ok' if ratio >= 0.9 else 'BELOW 0.9'})")
PY
