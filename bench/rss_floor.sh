#!/usr/bin/env bash
# Issue 17's target 5: the process's peak RSS of a short `lomo train` against the floor
# (parameters + activations, as `lomo memory` predicts them; no gradient term under LOMO), on a
# random LLaMA of SmolLM2-135M's shape, LOMO, batch 4 × 512, checkpointing on, fp32 and bf16.
# Rounds interleave the dtypes (fp32, bf16, fp32, bf16, ...). Per dtype: every run's peak RSS
# (`/usr/bin/time -v`), the median and the largest, the floor, the ratios, and the prediction's
# workspace. A build directory other than build/ can be given to compare two builds.
# Writes bench/results/rss_floor_<date>.json and prints a table.
#   usage: bench/rss_floor.sh [rounds=3] [steps=3] [build=build]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-3}
build=${3:-build}
command -v /usr/bin/time > /dev/null || apt-get install -y -qq time
[ -x "$build/lomo" ] || { echo "no $build/lomo: run scripts/build.sh first" >&2; exit 1; }
work=runs/bench_rss_floor
rm -rf "$work"
mkdir -p "$work" bench/results
"$build/lomo" init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --vocab 49152 --min-len 512 \
  --max-len 512
flags=(--model "$work/model" --batch-size 4 --seq-len 512 --checkpointing on --optimizer lomo)
for dt in fp32 bf16; do
  "$build/lomo" memory "${flags[@]}" --dtype "$dt" --json > "$work/plan_$dt.json"
done
for r in $(seq 1 "$rounds"); do
  for dt in fp32 bf16; do
    /usr/bin/time -v "$build/lomo" train "${flags[@]}" --dtype "$dt" --data "$work/data.jsonl" \
      --steps "$steps" --save off --lr 1e-3 > "$work/run_${dt}_$r.out" 2> "$work/time_${dt}_$r.out"
    kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$work/time_${dt}_$r.out")
    echo "round $r $dt: peak RSS $((kb / 1024)) MiB"
  done
done
out="bench/results/rss_floor_$(date +%F).json"
python3 - "$work" "$rounds" "$build" > "$out" <<'EOF'
import json, statistics, sys
work, rounds, build = sys.argv[1], int(sys.argv[2]), sys.argv[3]
res = {"build": build, "shape": "SmolLM2-135M, batch 4 x 512, checkpointing on, lomo"}
for dt in ("fp32", "bf16"):
    plan = json.load(open(f"{work}/plan_{dt}.json"))
    floor = plan["parameters"] + plan["activations"]
    rss = []
    for r in range(1, rounds + 1):
        for line in open(f"{work}/time_{dt}_{r}.out"):
            if "Maximum resident set size" in line:
                rss.append(int(line.split(":")[1]) * 1024)
    mib = lambda b: round(b / 2**20, 1)
    res[dt] = {"floor_mib": mib(floor), "predicted_total_mib": mib(plan["total"]),
               "predicted_workspace_mib": mib(plan["workspace"]),
               "peak_rss_mib": [mib(b) for b in rss],
               "ratio_each": [round(b / floor, 3) for b in rss],
               "ratio_median": round(statistics.median(rss) / floor, 3),
               "ratio_largest": round(max(rss) / floor, 3)}
print(json.dumps(res, indent=1))
EOF
python3 - "$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{r['shape']} ({r['build']})")
print("dtype  floor MiB  workspace MiB  peak RSS MiB (each run)       RSS/floor median  largest")
for dt in ("fp32", "bf16"):
    x = r[dt]
    runs = " ".join(f"{v:.1f}" for v in x["peak_rss_mib"])
    print(f"{dt:5}  {x['floor_mib']:9.1f}  {x['predicted_workspace_mib']:13.1f}  {runs:28}"
          f"  {x['ratio_median']:16.3f}  {x['ratio_largest']:.3f}")
print(f"written to {sys.argv[1]}")
EOF
