#!/usr/bin/env bash
# Implements: the planner's fit check on the GPU host (issue 14). Trains the
# 6.7b GPT (hidden 4096, 32 layers, seq 2048, micro-batch 2, grad-accum 4,
# bf16) with --optimize, which once chose zero3 and died out of memory, and
# prints the option chosen, the estimate and the measured peak. While it
# trains, a second run (gpt2-xl, stage none) starts on the same GPU, finds the
# memory taken, and must end with zinf's one-line out-of-memory error (the
# phase, the planner's numbers, what fits), not a LibTorch backtrace.
#   tools/bench_fit.sh build-gpu/zinf OUT_DIR
set -uo pipefail
zinf=${1:?usage: $0 ZINF OUT_DIR}
out=${2:?usage: $0 ZINF OUT_DIR}
mkdir -p "$out"
rm -rf "$out/big" "$out/second"

"$zinf" train --device cuda --precision bf16 --model 6.7b --batch-size 2 --grad-accum 4 --optimize \
  --steps 6 --no-save --log-every 1 --output-dir "$out/big" >"$out/big.log" 2>&1 &
big=$!
# The second run starts once the first holds its steady-state memory (step 2 done).
for _ in $(seq 1 600); do
  [ -f "$out/big/metrics.jsonl" ] && [ "$(wc -l <"$out/big/metrics.jsonl")" -ge 2 ] && break
  kill -0 $big 2>/dev/null || break
  sleep 0.5
done
"$zinf" train --device cuda --precision bf16 --model gpt2-xl --batch-size 16 --seq-len 1024 --steps 2 --no-save \
  --output-dir "$out/second" >"$out/second.log" 2>&1
second_rc=$?
wait $big
big_rc=$?

echo "| run | exit | what it said |"
echo "| --- | --- | --- |"
echo "| 6.7b --optimize | $big_rc | $(grep -o -- '--optimize chose [^:]*' "$out/big.log" | head -1); $(grep -o 'measured peaks: .*' "$out/big.log" | head -1) |"
echo "| gpt2-xl beside it | $second_rc | $(grep -E '^error:' "$out/second.log" | head -1 | cut -c1-400) |"
echo
echo "second run's stderr: $(wc -l <"$out/second.log") lines; backtrace lines: $(grep -c -E 'Exception raised from|frame #' "$out/second.log")"
grep -E '^hint:' "$out/second.log" | head -1
