#!/usr/bin/env bash
# Decode speed of `lomo generate` on the default model (SmolLM2-135M-Instruct, Q4_1 GGUF
# dequantised at load) in fp32 and bf16 (bf16 products), beside the memory-bandwidth limit: a
# decoded token reads every weight once, so tokens/s ≤ copy bandwidth / bytes of weights per token.
# The bandwidth is measured in the same run by bench/mem_bandwidth.cpp (STREAM-style copy: bytes
# read + written), with the same threads, before and after the generation runs.
# Greedy, --ignore-eos so every run decodes the same number of tokens; fp32 and bf16 runs
# interleaved (A B A B ...). Writes bench/results/generate_speed_<date>.json and prints a table.
#   env: THREADS (default all cores), TOKENS (128), ROUNDS (3), BUILD (build)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${BUILD:-build}
threads=${THREADS:-$(nproc)}
tokens=${TOKENS:-128}
rounds=${ROUNDS:-3}
if [[ ! -x $build/lomo || ! -x $build/mem_bandwidth ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build "$build" -j "$threads" --target lomo mem_bandwidth > /dev/null
fi
model=$(scripts/fetch_model.sh)
prompt="The history of the printing press begins"
mkdir -p bench/results
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
bw_before=$(OMP_NUM_THREADS=$threads "$build/mem_bandwidth" 512 10)
log=$(mktemp)
trap 'rm -f "$log" "$log.one"' EXIT
for ((r = 1; r <= rounds; ++r)); do
  for dtype in fp32 bf16; do
    "$build/lomo" generate --model "$model" --prompt "$prompt" --temperature 0 \
      --max-new-tokens "$tokens" --ignore-eos --stats --dtype "$dtype" --threads "$threads" \
      2> "$log.one" > /dev/null
    sed "s/^/$dtype $r /" "$log.one" >> "$log"
  done
done
bw_after=$(OMP_NUM_THREADS=$threads "$build/mem_bandwidth" 512 10)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
date=$(date -u +%Y-%m-%d)
out=bench/results/generate_speed_${date}.json
python3 - "$log" "$out" "$bw_before" "$bw_after" "$threads" "$tokens" "$(nproc)" "$model" "$load_before" "$load_after" <<'PY'
import json, re, statistics, sys, datetime, platform
log, out, bw0, bw1, threads, tokens, cores, model, load0, load1 = sys.argv[1:]
bw0, bw1 = json.loads(bw0), json.loads(bw1)
copy = min(bw0["copy_GBps"], bw1["copy_GBps"])  # the less favourable of the two
runs = {"fp32": [], "bf16": []}
prefill = {"fp32": [], "bf16": []}
weights = {}
for line in open(log):
    dtype, rnd, rest = line.split(" ", 2)
    m = re.search(r"(\d+) bytes of weights read per token", rest)
    if m:
        weights[dtype] = int(m.group(1))
    m = re.search(r"decode ([\d.]+) tokens/s", rest)
    if m:
        runs[dtype].append(float(m.group(1)))
    m = re.search(r"\(([\d.]+) tokens/s\); generated", rest)
    if m:
        prefill[dtype].append(float(m.group(1)))
res = {"date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z",
       "machine": f"{platform.processor() or platform.machine()}, {cores} cores", "threads": int(threads),
       "model": model, "new_tokens": int(tokens), "bandwidth_before": bw0, "bandwidth_after": bw1,
       "copy_GBps_used": copy, "load_average_before": load0, "load_average_after": load1,
       "dtypes": {}}
print(f"load average {load0} before, {load1} after (other jobs on the machine slow both sides)")
print(f"copy bandwidth {bw0['copy_GBps']:.2f} / {bw1['copy_GBps']:.2f} GB/s (before / after), "
      f"read {bw0['read_GBps']:.2f} / {bw1['read_GBps']:.2f} GB/s; limit uses {copy:.2f}")
print(f"{'dtype':6} {'MB/token':>9} {'limit tok/s':>12} {'decode tok/s (runs)':>28} {'median':>8} {'of limit':>9}")
for dtype, r in runs.items():
    if not r:
        continue
    limit = copy * 1e9 / weights[dtype]
    med = statistics.median(r)
    res["dtypes"][dtype] = {"weight_bytes_per_token": weights[dtype], "limit_tokens_per_s": limit,
                            "decode_tokens_per_s": r, "median": med, "fraction_of_limit": med / limit,
                            "worst_fraction_of_limit": min(r) / limit,
                            "prefill_tokens_per_s": prefill[dtype]}
    print(f"{dtype:6} {weights[dtype] / 1e6:9.1f} {limit:12.1f} {', '.join(f'{x:.1f}' for x in r):>28} "
          f"{med:8.1f} {100 * med / limit:8.1f}%")
json.dump(res, open(out, "w"), indent=1)
print("wrote", out)
PY
