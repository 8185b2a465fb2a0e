#!/usr/bin/env bash
# bf16 with stochastic rounding against fp32 and against bf16 with round-to-nearest, at a small
# learning rate where most LOMO updates are below half a bf16 ulp (design §4).
# Model: the demo's small random LLaMA (configs/tiny-llama.json), data: generated counting
# sequences (scripts/make_demo_data.py). 200 LOMO steps each, same seed and batch order.
# Writes bench/results/bf16_rounding_<date>.json (the three loss curves) and prints the table.
#   usage: bench/bf16_rounding.sh [steps=200] [lr=0.003]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-200}
lr=${2:-0.003}
scripts/setup.sh
scripts/build.sh > /dev/null
work=runs/bench_bf16
rm -rf "$work"
mkdir -p "$work" bench/results
./build/lomo init --config configs/tiny-llama.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 512 --seed 1
for run in fp32:fp32: bf16-stochastic:bf16:stochastic bf16-nearest:bf16:nearest; do
  IFS=: read -r name dtype rounding <<< "$run"
  rounding_flag=${rounding:+--rounding $rounding}  # --rounding applies to bf16 only
  ./build/lomo train --model "$work/model" --data "$work/data.jsonl" --out "$work/out-$name" \
    --dtype "$dtype" $rounding_flag --lr "$lr" --lr-schedule constant --warmup-ratio 0 \
    --steps "$steps" --batch-size 8 --seq-len 96 --shuffle off --log "$work/$name.jsonl" > /dev/null
done
date=$(date -u +%Y-%m-%d)
python3 - "$work" "$date" "$steps" "$lr" <<'PY'
import json, sys
work, date, steps, lr = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
curves = {n: [json.loads(l)["loss"] for l in open(f"{work}/{n}.jsonl") if "loss" in l]
          for n in ["fp32", "bf16-stochastic", "bf16-nearest"]}
last = {n: sum(c[-10:]) / 10 for n, c in curves.items()}
first = curves["fp32"][0]
json.dump({"date": date, "steps": steps, "lr": lr, "model": "configs/tiny-llama.json (random)",
           "final_loss_mean_last10": last, "curves": curves},
          open(f"bench/results/bf16_rounding_{date}.json", "w"), indent=1)
print(f"{date}: {steps} LOMO steps at lr {lr}, loss at step 1 {first:.4f}; mean loss of the last 10 steps:")
for n, v in last.items():
    print(f"  {n:<16} {v:.4f}  ({100 * (v / last['fp32'] - 1):+.1f} % vs fp32, fell {first - v:.4f})")
PY
