#!/usr/bin/env bash
# Two builds of `lomo` side by side on the CPU bench of bench/train_cpu.sh (a random LLaMA of
# SmolLM2-135M's shape, LOMO lr 1e-3, batch 4, checkpointing on, shuffle off), for a refactor
# that must change nothing: per dtype, the loss of every step must be bit-identical between the
# builds, and so must the saved model files; tokens/s are compared run against run, interleaved
# A B B A A B … so that drift of this noisy VM hits both alike. Reports every run, the medians
# and the least favourable pair.
#   usage: bench/ab_builds.sh BEFORE_LOMO AFTER_LOMO [rounds=3] [steps=8] [warmup=2]
#          [dtypes="fp32 bf16"] [seq=256]
# Writes bench/results/ab_builds_<date>.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
before=$(realpath "$1")
after=$(realpath "$2")
rounds=${3:-3}
steps=${4:-8}
warmup=${5:-2}
dtypes=${6:-fp32 bf16}
seq=${7:-256}
work=runs/bench_ab
rm -rf "$work"
mkdir -p "$work" bench/results
"$after" init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --vocab 49152 --min-len "$seq" --max-len "$seq"
run() {  # build tag dtype round
  "$1" train --model "$work/model" --data "$work/data.jsonl" --out "$work/out_$2_$3_$4" \
    --optimizer lomo --lr 1e-3 --lr-schedule constant --steps "$steps" --batch-size 4 \
    --seq-len "$seq" --dtype "$3" --shuffle off --checkpointing on \
    --log "$work/log_$2_$3_$4.jsonl" > "$work/out_$2_$3_$4.txt"
  grep '^done' "$work/out_$2_$3_$4.txt" | sed "s/^/$2 $3 round $4: /"
}
for dt in $dtypes; do
  for ((r = 0; r < rounds; ++r)); do
    if ((r % 2 == 0)); then
      run "$before" before "$dt" "$r"; run "$after" after "$dt" "$r"
    else
      run "$after" after "$dt" "$r"; run "$before" before "$dt" "$r"
    fi
  done
done
python3 - "$work" "$rounds" "$warmup" "$seq" $dtypes <<'PY'
import datetime, filecmp, json, statistics, sys
work, rounds, warmup, seq = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dtypes = sys.argv[5:]
date = datetime.date.today().isoformat()
res = {"date": date, "bench": "bench/train_cpu.sh settings, seq %d, batch 4" % seq,
       "warmup_steps": warmup, "dtypes": {}}
print(f"\n{date}: before vs after, {rounds} interleaved rounds per dtype")
for dt in dtypes:
    runs = {"before": [], "after": []}
    losses = {"before": [], "after": []}
    for tag in runs:
        for r in range(rounds):
            steps = [json.loads(l) for l in open(f"{work}/log_{tag}_{dt}_{r}.jsonl")]
            runs[tag].append(statistics.median(s["tokens_per_s"] for s in steps[warmup:]))
            losses[tag].append([s["loss"] for s in steps])
    identical = all(l == losses["before"][0] for l in losses["before"] + losses["after"])
    same_model = all(filecmp.cmp(f"{work}/out_before_{dt}_0/model.safetensors",
                                 f"{work}/out_{tag}_{dt}_{r}/model.safetensors", shallow=False)
                     for tag in runs for r in range(rounds))
    ratios = [a / b for a, b in zip(runs["after"], runs["before"])]
    med = statistics.median(runs["after"]) / statistics.median(runs["before"])
    res["dtypes"][dt] = {"tokens_per_s": runs, "after_over_before_by_round": ratios,
                         "after_over_before_medians": med, "losses_bit_identical": identical,
                         "saved_models_identical": same_model, "losses": losses["after"][0]}
    print(f"  {dt}: losses bit-identical {identical}, saved models identical {same_model}")
    print(f"    tok/s before {['%.1f' % x for x in runs['before']]}, after {['%.1f' % x for x in runs['after']]}")
    print(f"    after/before: medians {med:.3f}, by round {['%.3f' % x for x in ratios]}, least favourable {min(ratios):.3f}")
out = f"bench/results/ab_builds_{date}.json"
json.dump(res, open(out, "w"), indent=2)
print(f"  -> {out}")
PY
