#!/usr/bin/env bash
# tools/bench_tokenize.sh — `zinf tokenize` against Hugging Face `tokenizers`.
# Implements: one run that tokenizes the same JSONL corpus with zinf (all
# cores, end to end: read, JSON parse, encode, write shards) and with the
# `tokenizers` Python package (Tokenizer.encode_batch on all cores, encode
# only: reading and parsing are not timed), checks that both produced the same
# number of tokens, and prints tokens/s for both and their ratio.
#
# Usage: tools/bench_tokenize.sh --tokenizer DIR [--corpus FILE.jsonl] [--mb 256]
#                                [--zinf build/zinf] [--threads N] [--work DIR]
#   --tokenizer DIR  a directory with tokenizer.json (e.g. a Hugging Face GPT-2
#                    or Llama-3 model directory)
#   --corpus FILE    a JSONL corpus with a "text" field; default: one of --mb
#                    MB generated from data/corpus.txt (documents of shuffled
#                    lines with numbers and identifiers mixed in, seed 0)
#   --threads N      threads for both (default: all cores)
# Needs python3 with the `tokenizers` package (pip install tokenizers).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tokenizer="" corpus="" mb=256 zinf="$here/build/zinf" threads="$(nproc)" work=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tokenizer) tokenizer="$2"; shift 2 ;;
    --corpus) corpus="$2"; shift 2 ;;
    --mb) mb="$2"; shift 2 ;;
    --zinf) zinf="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ -n "$tokenizer" && -f "$tokenizer/tokenizer.json" ]] || { echo "give --tokenizer DIR holding tokenizer.json" >&2; exit 2; }
[[ -x "$zinf" ]] || { echo "no zinf binary at $zinf (build it, or pass --zinf)" >&2; exit 2; }
python3 -c "import tokenizers" 2>/dev/null || { echo "python3 lacks the tokenizers package: pip install tokenizers" >&2; exit 2; }

if [[ -z "$work" ]]; then work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT; fi
mkdir -p "$work"

if [[ -z "$corpus" ]]; then
  corpus="$work/corpus.jsonl"
  python3 - "$here/data/corpus.txt" "$corpus" "$mb" <<'EOF'
import json, random, sys
src, dst, mb = sys.argv[1], sys.argv[2], float(sys.argv[3])
lines = [l.strip() for l in open(src, encoding="utf-8", errors="replace") if l.strip()]
rng = random.Random(0)
target, written = int(mb * 1e6), 0
with open(dst, "w", encoding="utf-8") as f:
    while written < target:
        parts = []
        for _ in range(rng.randint(5, 60)):
            parts.append(rng.choice(lines))
            if rng.random() < 0.2:
                parts.append(f"{rng.randint(0, 10**rng.randint(1, 9))} id_{rng.getrandbits(24):06x}")
        line = json.dumps({"text": " ".join(parts)}, ensure_ascii=False) + "\n"
        f.write(line)
        written += len(line.encode("utf-8"))
EOF
fi
bytes=$(stat -c %s "$corpus")
echo "corpus: $corpus ($bytes bytes), tokenizer: $tokenizer, threads: $threads"

# ---------------------------------------------------------------- zinf
rm -rf "$work/out"
start=$(date +%s.%N)
"$zinf" tokenize --tokenizer "$tokenizer" "$corpus" --output-dir "$work/out" --val-fraction 0 --no-eos \
  --threads "$threads" > "$work/zinf.txt" 2> "$work/zinf.err" || { cat "$work/zinf.err" >&2; exit 1; }
end=$(date +%s.%N)
zinf_tokens=$(python3 -c "import json; print(json.load(open('$work/out/manifest.json'))['tokens']['train'])")
zinf_s=$(python3 -c "print($end - $start)")
grep throughput "$work/zinf.txt"

# ---------------------------------------------------------------- tokenizers
read -r hf_tokens hf_s < <(RAYON_NUM_THREADS="$threads" TOKENIZERS_PARALLELISM=true python3 - "$tokenizer/tokenizer.json" "$corpus" <<'EOF'
import json, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
texts = [json.loads(l)["text"] for l in open(sys.argv[2], encoding="utf-8") if l.strip()]
tokens, t0 = 0, time.perf_counter()
for i in range(0, len(texts), 4096):
    tokens += sum(len(e.ids) for e in tok.encode_batch(texts[i:i + 4096], add_special_tokens=False))
print(tokens, time.perf_counter() - t0)
EOF
)

python3 - "$zinf_tokens" "$zinf_s" "$hf_tokens" "$hf_s" "$bytes" <<'EOF'
import sys
zt, zs, ht, hs, b = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
print(f"zinf tokenize (end to end):    {zt} tokens in {zs:.2f} s: {zt / zs:,.0f} tokens/s, {b / zs / 1e6:.1f} MB/s")
print(f"tokenizers encode_batch:       {ht} tokens in {hs:.2f} s: {ht / hs:,.0f} tokens/s, {b / hs / 1e6:.1f} MB/s")
print(f"ratio zinf / tokenizers: {(zt / zs) / (ht / hs):.2f}")
if zt != ht:
    print(f"MISMATCH: zinf wrote {zt} tokens, tokenizers made {ht}", file=sys.stderr)
    sys.exit(1)
EOF
