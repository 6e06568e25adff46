#!/usr/bin/env bash
# Implements: the refactoring check of issue 15: a fixed 20-step CPU run of
# the tiny model for every stage and offload option, on 1 and 2 ranks, with
# grad-accum 2, prints one line per run with every step's loss as
# metrics.jsonl stores it (full precision). Run it before and after a change
# to the engine and diff the outputs: they must be identical.
#
#   tools/golden_losses.sh ZINF_BINARY OUT_DIR > losses.txt
set -euo pipefail
[[ $# -eq 2 ]] || { echo "usage: $0 ZINF_BINARY OUT_DIR" >&2; exit 2; }
ZINF=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
OUT=$2
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PYTHON=${PYTHON:-python3}
common=(--device cpu --model tiny --seq-len 64 --batch-size 2 --grad-accum 2 --steps 20 --log-every 1 --no-save
        --seed 3 --lr 1e-3)
port=$((29500 + RANDOM % 2000))
for ranks in 1 2; do
  for cfg in none zero1 zero2 zero3 infinity-cpu infinity-nvme none-l2 zero3-l2; do
    case $cfg in
      infinity-cpu) stage=(--preset infinity-cpu) ;;
      infinity-nvme) stage=(--zero-stage infinity --nvme-offload-path "$OUT/nvme-$ranks") ;;
      none-l2) stage=(--zero-stage none --config "$OUT/adam.json") ;;  # Adam with L2 weight decay
      zero3-l2) stage=(--zero-stage zero3 --config "$OUT/adam.json") ;;
      *) stage=(--zero-stage "$cfg") ;;
    esac
    echo '{"optimizer": {"type": "Adam", "params": {"weight_decay": 0.1, "adam_w_mode": false}}}' >"$OUT/adam.json"
    dir=$OUT/$cfg-$ranks
    rm -rf "$dir"
    if [[ $ranks == 1 ]]; then
      "$ZINF" train "${common[@]}" "${stage[@]}" --output-dir "$dir" >"$dir.log" 2>&1
    else
      port=$((port + 1))
      "$ZINF" launch --nproc 2 --master-port "$port" -- train "${common[@]}" "${stage[@]}" --output-dir "$dir" \
        >"$dir.log" 2>&1
    fi
    printf '%s ranks=%s ' "$cfg" "$ranks"
    "$PYTHON" -c 'import json, sys
print(" ".join(repr(json.loads(l)["loss"]) for l in open(sys.argv[1]) if l.strip() and "loss" in json.loads(l)))' \
      "$dir/metrics.jsonl"
  done
done
