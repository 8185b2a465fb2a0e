#!/usr/bin/env bash
# What 16-bit block inputs (--activation-dtype) do to training: the README's demo task (the
# default model, data/glorp, 40 LOMO steps, batch 8, lr 0.05, clip-grad-norm 1.0, eval every
# 10 steps), once per storage dtype with fp32 block inputs and with 16-bit ones, same seed and
# order. Reports per pair the largest and mean |loss difference| over the 40 steps, the final
# losses, held-out accuracy at every evaluation, and the tracked activation peak.
# Writes bench/results/activation_dtype_<date>.md and prints it.
#   usage: bench/activation_dtype.sh [steps=40]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}
scripts/setup.sh > /dev/null
scripts/build.sh > /dev/null
scripts/fetch_model.sh > /dev/null
work=runs/bench_activation_dtype
rm -rf "$work"
mkdir -p "$work" bench/results
run() {  # name dtype activation-dtype
  ./build/lomo train --task choice --data data/glorp/train.jsonl \
    --eval-data data/glorp/heldout.jsonl --out "$work/$1" --steps "$steps" --batch-size 8 \
    --lr 0.05 --clip-grad-norm 1.0 --eval-every 10 --checkpointing on --dtype "$2" \
    --activation-dtype "$3" --log "$work/$1.jsonl" > "$work/$1.out" 2>&1
  grep -E "^memory" "$work/$1.out" | head -n 1
}
# Interleaved: each pair runs back to back.
run fp32_act32 fp32 fp32
run fp32_act16 fp32 bf16
run bf16_act32 bf16 fp32
run bf16_act16 bf16 bf16
out="bench/results/activation_dtype_$(date +%F).md"
python3 - "$work" > "$out" <<'EOF'
import json, sys
work = sys.argv[1]
def read(name):
    steps, evals = {}, {}
    for line in open(f"{work}/{name}.jsonl"):
        j = json.loads(line)
        if "loss" in j: steps[j["step"]] = (j["loss"], j.get("memory_peak_bytes", 0))
        if "eval_accuracy" in j: evals[j["step"]] = j["eval_accuracy"]
    return steps, evals
print("# 16-bit block inputs on the demo task (bench/activation_dtype.sh)\n")
print("| parameters | block inputs | final loss | max abs loss diff vs fp32 inputs | mean abs diff | held-out accuracy at steps 0/10/20/30/40 | tracked peak |")
print("|---|---|---|---|---|---|---|")
for dt in ["fp32", "bf16"]:
    base, base_ev = read(f"{dt}_act32")
    for act in ["32", "16"]:
        s, ev = read(f"{dt}_act{act}")
        diffs = [abs(s[k][0] - base[k][0]) for k in s if k in base]
        last = max(s)
        acc = "/".join(f"{ev[k]:.3f}" for k in sorted(ev))
        peak = max(v[1] for v in s.values()) / 2**30
        print(f"| {dt} | {'fp32' if act == '32' else 'bf16'} | {s[last][0]:.4f} | "
              f"{max(diffs):.4f} | {sum(diffs) / len(diffs):.4f} | {acc} | {peak:.3f} GiB |")
EOF
cat "$out"
