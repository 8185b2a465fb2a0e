#!/usr/bin/env bash
# Data parallelism's and sharding's scaling on this machine's CPU: the same run (default model,
# 64 lines of generated text of about 256 tokens, batch 8, checkpointing on, LOMO) as one process
# with all the cores, as 2 ranks under mpirun (--parallel dp) with half the cores each, and as 2
# sharded ranks (--parallel shard), interleaved `pairs` times.
# Reports tokens/s of each run, the median of each side, per-rank throughput and the scaling
# efficiency (2-rank tokens/s / 1-process tokens/s: 1.0 means the ranks lose nothing to
# messages; on 2 cores the ideal is the same tokens/s, each rank doing half the work on half
# the cores). Writes bench/results/parallel_<date>.md and prints it.
#   usage: bench/data_parallel.sh [pairs=3] [steps=6]
#   LOMO_BIN=build-x/lomo bench/data_parallel.sh   uses that binary instead of building build/
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-3}
steps=${2:-6}
scripts/setup.sh > /dev/null
bin=${LOMO_BIN:-build/lomo}
[[ -n ${LOMO_BIN:-} ]] || scripts/build.sh > /dev/null
model=$(scripts/fetch_model.sh)
work=runs/bench_data_parallel
rm -rf "$work"
mkdir -p "$work" bench/results
cores=$(nproc)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
python3 - "$work/data.jsonl" <<'PY'
import json, random, sys
random.seed(0)
words = "the a glorp river stone light over under quickly seven blue market song old new".split()
with open(sys.argv[1], "w") as f:
    for _ in range(64):
        f.write(json.dumps({"text": " ".join(random.choice(words) for _ in range(200))}) + "\n")
PY
common=(train --model "$model" --data "$work/data.jsonl" --steps "$steps" --batch-size 8
  --seq-len 256 --checkpointing on --lr 0.01 --memory-limit 0)
run() {  # name ranks [parallel mode]
  local out=$work/$1
  if [[ $2 == 1 ]]; then
    "$bin" "${common[@]}" --threads "$cores" --out "$out" --log "$out.jsonl" > "$out.log" 2>&1
  else
    mpirun -np "$2" --bind-to none "$bin" "${common[@]}" --threads $((cores / $2)) \
      --parallel "${3:-dp}" --out "$out" --log "$out.jsonl" > "$out.log" 2>&1
  fi
}
for i in $(seq "$pairs"); do
  run "one_$i" 1
  run "dp2_$i" 2
  run "shard2_$i" 2 shard
done
out="bench/results/parallel_$(date +%F).md"
python3 - "$work" "$pairs" "$cores" > "$out" <<'PY'
import json, statistics, sys
work, pairs, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def tps(name):
    rows = [json.loads(l) for l in open(f"{work}/{name}.jsonl") if '"loss"' in l]
    rows = rows[1:]  # the first step warms up
    return sum(r["tokens"] for r in rows) / sum(r["tokens"] / r["tokens_per_s"] for r in rows)
def comm(name):  # rank 0's seconds per step in the gradient sums (steps after the first)
    rows = [json.loads(l) for l in open(f"{work}/{name}.jsonl") if '"loss"' in l][1:]
    return sum(r.get("comm_s", 0) for r in rows) / len(rows), sum(r["tokens"] / r["tokens_per_s"] for r in rows) / len(rows)
one = [tps(f"one_{i}") for i in range(1, pairs + 1)]
dp = [tps(f"dp2_{i}") for i in range(1, pairs + 1)]
sh = [tps(f"shard2_{i}") for i in range(1, pairs + 1)]
print("# Data parallelism and sharding on the CPU (bench/data_parallel.sh)\n")
print(f"{cores} cores; default model, batch 8 x 256 tokens, checkpointing on, LOMO; steps after the first.\n")
print("| pair | 1 process, tokens/s | 2 ranks, tokens/s | per rank | 2 ranks / 1 process | sums, s of the step |")
print("|---|---|---|---|---|---|")
for i, (a, b) in enumerate(zip(one, dp), 1):
    c, step = comm(f"dp2_{i}")
    print(f"| {i} | {a:.0f} | {b:.0f} | {b / 2:.0f} | {b / a:.2f} | {c:.2f} of {step:.2f} |")
m1, m2 = statistics.median(one), statistics.median(dp)
print(f"| median | {m1:.0f} | {m2:.0f} | {m2 / 2:.0f} | {m2 / m1:.2f} | |")
print(f"\nLeast favourable pair: {min(b / a for a, b in zip(one, dp)):.2f}.")
print("\n## 2 sharded ranks (--parallel shard), same runs interleaved\n")
print("| run | sharded, tokens/s | / 1 process | / 2 dp ranks | reduce-scatters, s of the step |")
print("|---|---|---|---|---|")
for i, (a, b, c) in enumerate(zip(one, dp, sh), 1):
    cs, step = comm(f"shard2_{i}")
    print(f"| {i} | {c:.0f} | {c / a:.2f} | {c / b:.2f} | {cs:.2f} of {step:.2f} |")
ms = statistics.median(sh)
print(f"| median | {ms:.0f} | {ms / m1:.2f} | {ms / m2:.2f} | |")
print(f"\nLeast favourable sharded run against 1 process: {min(c / a for a, c in zip(one, sh)):.2f}; "
      "the gathers' time is not in the last column (only the gradient reduce-scatters are).")
PY
cat "$out"
