#!/usr/bin/env bash
# The attention phase of two `lomo` builds, interleaved (A B, B A, A B, …) on bench/train_cpu.sh's
# settings (a random LLaMA of SmolLM2-135M's shape, LOMO lr 1e-3, checkpointing on, shuffle off)
# with `--profile on`: per run, the attention phase's and the step's mean seconds (steps after the
# first). Seq 512 runs batch 4, seq 2048 batch 1.
#   usage: bench/attention_ab.sh BEFORE_LOMO AFTER_LOMO [rounds=3] [steps=3] [dtype=fp32]
#          [seqs="512 2048"]
# Prints one line per run: seq, build, round, attention s/step, step s.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
after=$(realpath "$2")
rounds=${3:-3}
steps=${4:-3}
dtype=${5:-fp32}
seqs=${6:-512 2048}
work=runs/bench_attention
mkdir -p "$work"
[ -d "$work/model" ] ||
  "$after" init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
run() {  # binary tag seq round
  local batch=$((4 * 512 / $3))
  [ -f "$work/data_$3.jsonl" ] || python3 scripts/make_demo_data.py "$work/data_$3.jsonl" \
    --lines 64 --vocab 49152 --min-len "$3" --max-len "$3" > /dev/null
  rm -rf "$work/out"
  "$1" train --model "$work/model" --data "$work/data_$3.jsonl" --out "$work/out" \
    --optimizer lomo --lr 1e-3 --lr-schedule constant --steps "$steps" --batch-size "$batch" \
    --seq-len "$3" --dtype "$dtype" --shuffle off --checkpointing on --profile on \
    > "$work/run_$2_$3_$4.txt" 2>&1
  local attn step
  attn=$(awk '/^ *attention /{print $2}' "$work/run_$2_$3_$4.txt")
  step=$(awk '/^ +step +[0-9.]+$/{print $2}' "$work/run_$2_$3_$4.txt")
  echo "seq $3 $dtype $2 round $4: attention $attn s/step, step $step s"
}
for seq in $seqs; do
  for ((r = 0; r < rounds; ++r)); do
    if ((r % 2 == 0)); then
      run "$before" before "$seq" "$r"; run "$after" after "$seq" "$r"
    else
      run "$after" after "$seq" "$r"; run "$before" before "$seq" "$r"
    fi
  done
done
