#!/usr/bin/env bash
# Step speed of LOMO, plain LoRA (base frozen) and LoRA + LOMO on the CPU bench's setting (a
# random LLaMA of SmolLM2-135M's shape, batch 4 × SEQ tokens, checkpointing on, fp32, 2
# threads), the three interleaved in every round (rotating who goes first) so that the VM's
# drift hits all alike. Per run: the median tokens/s of the steps after WARMUP; reported: every
# run, each method's median, and the ratios to LOMO.
#   env: ROUNDS (3), STEPS (6), WARMUP (2), SEQ (256), RANK (8), TARGETS (all)
# Writes bench/results/lora_speed_<date>.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}; steps=${STEPS:-6}; warmup=${WARMUP:-2}; seq=${SEQ:-256}
rank=${RANK:-8}; targets=${TARGETS:-all}
work=runs/bench_lora_speed
rm -rf "$work" && mkdir -p "$work" bench/results
./build/lomo init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --vocab 49152 --min-len "$seq" --max-len "$seq"
common=(--model "$work/model" --data "$work/data.jsonl" --steps "$steps" --batch-size 4
        --seq-len "$seq" --checkpointing on --shuffle off --lr-schedule constant --threads 2)
run() {  # method round
  local extra
  case $1 in
    lomo) extra=(--lr 1e-3) ;;
    lora) extra=(--lora-rank "$rank" --lora-targets "$targets" --lora-lr 1e-3) ;;
    lora_lomo) extra=(--lora-rank "$rank" --lora-targets "$targets" --lora-lr 1e-3 --base-lr 1e-3) ;;
  esac
  ./build/lomo train "${common[@]}" "${extra[@]}" --out "$work/out_$1_$2" \
    --log "$work/log_$1_$2.jsonl" > "$work/out_$1_$2.txt"
}
methods=(lomo lora lora_lomo)
for ((r = 0; r < rounds; ++r)); do
  for ((i = 0; i < 3; ++i)); do run "${methods[(i + r) % 3]}" "$r"; done
done
python3 - "$work" "$rounds" "$warmup" "$seq" "$rank" "$targets" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import datetime, json, statistics, sys
work, rounds, warmup, seq, rank, targets, load = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
date = datetime.date.today().isoformat()
res = {"date": date, "setting": f"SmolLM2-135M shape (random), fp32, batch 4 x {seq}, checkpointing on, 2 threads, LoRA rank {rank} on {targets}",
       "warmup_steps": warmup, "load_average_after": load, "runs": {}, "median": {}}
for m in ["lomo", "lora", "lora_lomo"]:
    runs = []
    for r in range(rounds):
        steps = [json.loads(l) for l in open(f"{work}/log_{m}_{r}.jsonl")]
        runs.append(round(statistics.median(s["tokens_per_s"] for s in steps[warmup:]), 1))
    res["runs"][m] = runs
    res["median"][m] = statistics.median(runs)
out = f"bench/results/lora_speed_{date}.json"
json.dump(res, open(out, "w"), indent=2)
print(f"{date}, {res['setting']}; load average after: {load}")
for m in ["lomo", "lora", "lora_lomo"]:
    print(f"{m:10s} tokens/s runs {res['runs'][m]}  median {res['median'][m]:.1f}  "
          f"x LOMO {res['median'][m] / res['median']['lomo']:.2f}")
print("wrote", out)
PY
