#!/usr/bin/env bash
# Implements: the Llama benchmarks and checks of issue 16 on a GPU host, in one
# call (docs/benchmarks.md records the results):
#   speed   stage none on a ~1.3B Llama (hidden 2048, 24 layers, 16 heads,
#           MLP 5632, vocab 32000), seq 2048, batch 4, bf16: zinf train
#           --from-pretrained against a plain PyTorch Llama (SDPA, fused AdamW)
#           and transformers' LlamaForCausalLM (sdpa), one after the other on
#           the same GPU (bench/llama_reference.py); tokens/s and the ratios.
#   finetune the same model from its HF directory: --optimize (saved; its
#           final model directory is the export), infinity-cpu and
#           infinity-nvme (--no-save; NVMe_STEPS steps), loss per run.
#   export  the run's exported directory loads with transformers'
#           AutoModelForCausalLM and its loss on a held-back batch matches
#           `zinf eval` on the same tokens (bf16 tolerance).
# PARTS picks sections (default all: "speed finetune nvme export"; export needs
# finetune). A run that fails puts the tail of its log in the summary.
# Usage: OUT=/tmp/o STEPS=20 NVME=/tmp/zinf-nvme [PARTS="speed"] tools/bench_llama.sh [ZINF]
set -uo pipefail
cd "$(dirname "$0")/.."
ZINF=${1:-${ZINF:-build-gpu/zinf}}
OUT=${OUT:-$(mktemp -d /tmp/zinf-llama.XXXXXX)}
STEPS=${STEPS:-20}
NVME_STEPS=${NVME_STEPS:-5}
NVME=${NVME:-/tmp/zinf-nvme}
PYTHON=${PYTHON:-python3}
PARTS=${PARTS:-speed finetune nvme export}
want() { [[ " $PARTS " == *" $1 "* ]]; }
mkdir -p "$OUT"
SHAPE="--hidden-size 2048 --layers 24 --heads 16 --kv-heads 16 --intermediate-size 5632 --vocab-size 32000"
MODEL=$OUT/llama-1.3b
summary=$OUT/llama-summary.md
: >"$summary"
note() { echo "$*" | tee -a "$summary"; }
# A failed run's last log lines go in the summary: the logs may not come back.
check() {  # rc, log
  [[ $1 == 0 ]] || { note "  failed (rc $1): $2"; tail -5 "$2" | cut -c1-300 | sed 's/^/    /' | tee -a "$summary"; }
}

# shellcheck disable=SC2086
$PYTHON bench/llama_reference.py $SHAPE --make-model "$MODEL" >"$OUT/make-model.json" 2>"$OUT/make-model.log" ||
  { note "make-model failed: $(tail -3 "$OUT/make-model.log")"; exit 1; }
# Random training tokens and a held-back file, llm.c uint16.
$PYTHON - "$OUT" <<'PY'
import struct, sys, random
out = sys.argv[1]
for name, n, seed in (("train.bin", 4_000_000, 1), ("held.bin", 2 * 2048 + 1, 2)):
    r = random.Random(seed)
    ids = [r.randrange(32000) for _ in range(n)]
    with open(f"{out}/{name}", "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
        f.write(struct.pack(f"<{n}H", *ids))
PY
COMMON=(--device cuda --precision bf16 --seq-len 2048 --batch-size 4 --dataset-file "$OUT/train.bin" --log-every 5)

if want speed; then
note "## speed: stage none, 1.3B Llama, seq 2048, batch 4, bf16, $STEPS steps"
"$ZINF" train --from-pretrained "$MODEL" --zero-stage none "${COMMON[@]}" --steps "$STEPS" --no-save \
    --output-dir "$OUT/speed" >"$OUT/speed.json" 2>"$OUT/speed.log"
check $? "$OUT/speed.log"
# shellcheck disable=SC2086
$PYTHON bench/llama_reference.py --impl plain $SHAPE --steps "$STEPS" >"$OUT/plain.json" 2>"$OUT/plain.log"
check $? "$OUT/plain.log"
# shellcheck disable=SC2086
$PYTHON bench/llama_reference.py --impl transformers $SHAPE --steps "$STEPS" >"$OUT/hf.json" 2>"$OUT/hf.log"
check $? "$OUT/hf.log"
$PYTHON - "$OUT" <<'PY' | tee -a "$summary"
import json, sys
out = sys.argv[1]
def last(p):  # summary.json is one indented object; the peers print one JSON line last
    try:
        text = open(p).read().strip()
        try: return json.loads(text)
        except ValueError: return json.loads(text.splitlines()[-1])
    except Exception as e: return {"error": str(e)}
z, p, h = last(f"{out}/speed/summary.json"), last(f"{out}/plain.json"), last(f"{out}/hf.json")
print("| impl | tokens/s | TFLOP/s | peak GPU | zinf / impl |")
print("| --- | ---: | ---: | ---: | ---: |")
zt = z.get("mean_tokens_per_s", 0)
for name, r in (("zinf stage none", z), ("plain PyTorch Llama", p), ("transformers LlamaForCausalLM", h)):
    t = r.get("mean_tokens_per_s", 0)
    print(f"| {name} | {t:.0f} | {r.get('mean_tflops', 0):.1f} | {r.get('peak_gpu_bytes', 0)/2**30:.1f} GiB | "
          f"{(zt / t if t else 0):.3f} |")
PY
fi

if want finetune || want nvme; then note "## finetune from the HF directory"; fi
run_ft() {  # name, steps, extra options...
  local name=$1 steps=$2; shift 2
  local t0=$SECONDS
  "$ZINF" train --from-pretrained "$MODEL" "${COMMON[@]}" --steps "$steps" --output-dir "$OUT/ft-$name" "$@" \
      >"$OUT/ft-$name.json" 2>"$OUT/ft-$name.log"
  local rc=$?
  check $rc "$OUT/ft-$name.log"
  local first last
  first=$(grep -m1 -o '"loss":[0-9.e+-]*' "$OUT/ft-$name/metrics.jsonl" 2>/dev/null | head -1)
  last=$(grep -o '"loss":[0-9.e+-]*' "$OUT/ft-$name/metrics.jsonl" 2>/dev/null | tail -1)
  note "- $name: rc $rc, $steps steps in $((SECONDS - t0)) s, first $first, last $last; $(grep -m1 'recipe\|--optimize chose' "$OUT/ft-$name.log" | cut -c1-160)"
}
if want finetune; then
  run_ft optimize "$STEPS" --optimize --keep-checkpoints 1
  rm -rf "$OUT/ft-optimize/checkpoints"  # 16 bytes per parameter; the model/ directory stays for the export check
  run_ft infinity-cpu "$STEPS" --preset infinity-cpu --no-save
fi
if want nvme; then
  rm -rf "$NVME"
  run_ft infinity-nvme "$NVME_STEPS" --zero-stage infinity --nvme-offload-path "$NVME" --no-save
  rm -rf "$NVME"
fi
want export || { echo "----"; cat "$summary"; exit 0; }

note "## export: transformers loads the run's model directory; its loss = zinf eval"
EXPORTED=$OUT/ft-optimize/model
"$ZINF" eval "$EXPORTED" --device cuda --precision bf16 --dataset-file "$OUT/held.bin" --seq-len 2048 \
    --batch-size 1 >"$OUT/eval.json" 2>"$OUT/eval.log"
$PYTHON - "$EXPORTED" "$OUT/held.bin" "$OUT/eval.json" <<'PY' 2>"$OUT/hf-eval.log" | tee -a "$summary"
import json, struct, sys, torch
from transformers import AutoModelForCausalLM
d, held, ev = sys.argv[1:4]
raw = open(held, "rb").read()
n = struct.unpack("<3i", raw[:12])[2]
ids = torch.tensor(struct.unpack(f"<{n}H", raw[1024:1024 + 2 * n]), dtype=torch.long)
m = AutoModelForCausalLM.from_pretrained(d, torch_dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
T = 2048
losses = []
with torch.no_grad():
    for w in range((n - 1) // T):
        x = ids[w * T:(w + 1) * T + 1].cuda()
        logits = m(input_ids=x[None, :-1]).logits.float()
        losses.append(torch.nn.functional.cross_entropy(logits[0], x[1:]).item())
hf = sum(losses) / len(losses)
z = json.loads(open(ev).read().strip().splitlines()[-1])["loss"]
print(f"- transformers {hf:.5f}, zinf eval {z:.5f}, |diff| {abs(hf - z):.5f} (bf16 tolerance 0.02: "
      f"{'ok' if abs(hf - z) < 0.02 else 'FAIL'})")
PY
echo "----"; cat "$summary"
