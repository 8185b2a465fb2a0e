#!/usr/bin/env bash
# Baseline throughput and memory of `lomo train` on the CPU (issue: engine core, item 6).
# Model: a random LLaMA of SmolLM2-135M's shape (configs/smollm2-135m-shape.json: d_model 576,
# 30 layers, 9 heads, 3 kv heads, d_ff 1536, vocab 49152, tied). LOMO, fp32, seq 256, batch 4,
# checkpointing on. Reports the median tokens/s over the steps after warm-up, peak RSS
# (/usr/bin/time -v), the tracked memory table, and the achieved GFLOP/s against the machine's
# GEMM rate measured in the same run with the same library (oneDNN sgemm, 2048² fp32).
# Writes bench/results/train_cpu_<date>.json and prints a table.
# Also reports the memory floor: parameters + checkpointed activations (the L+1 block inputs) +
# one gradient (the largest tensor's, plus the tied embedding's), and peak RSS over it.
#   usage: bench/train_cpu.sh [steps=12] [warmup=2] [dtype=fp32] [seq=256] [extra train flags]
# e.g. bench/train_cpu.sh 5 1 bf16 512 "--bf16-gemm off" (the result file's name gets the flags).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-12}
warmup=${2:-2}
dtype=${3:-fp32}
seq=${4:-256}
extra=${5:-}
scripts/setup.sh
command -v /usr/bin/time > /dev/null || apt-get install -y -qq time
scripts/build.sh > /dev/null
work=runs/bench_cpu
rm -rf "$work"
mkdir -p "$work" bench/results
./build/lomo init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --vocab 49152 --min-len "$seq" --max-len "$seq"
gemm_json=$(./build/gemm_rate 2048 7)
/usr/bin/time -v ./build/lomo train --model "$work/model" --data "$work/data.jsonl" --out "$work/out" \
  --optimizer lomo --lr 1e-3 --lr-schedule constant --steps "$steps" --batch-size 4 --seq-len "$seq" \
  --dtype "$dtype" \
  --shuffle off --checkpointing on --log "$work/log.jsonl" $extra > "$work/train.out" 2> "$work/time.out"
cat "$work/train.out"
date=$(date -u +%Y-%m-%d)
python3 - "$work" "$warmup" "$gemm_json" "$date" "$dtype" "$seq" "$extra" <<'PY'
import json, re, statistics, sys, platform
work, warmup, gemm, date = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
dtype, seq, extra = sys.argv[5], int(sys.argv[6]), sys.argv[7]
cfg = json.load(open("configs/smollm2-135m-shape.json"))
steps = [json.loads(l) for l in open(f"{work}/log.jsonl")]
tps = statistics.median(s["tokens_per_s"] for s in steps[warmup:])
rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{work}/time.out").read()).group(1))
mem = json.load(open(f"{work}/out/memory.json"))
d, L, ff, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = d // h
qd, kvd, T = h * hd, kv * hd, seq
n_matmul = L * (d * qd + 2 * d * kvd + qd * d + 3 * d * ff) + V * d  # the head's matmul
attn_fwd = L * 4 * qd * T        # q·kᵀ and P·v per token, full T×T as our kernel computes
fwd = 2 * n_matmul + attn_fwd
flops_per_token = 3 * fwd + fwd  # forward + backward (2×) + the recomputed forward
gflops = tps * flops_per_token / 1e9
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
res = {
    "date": date, "cpu": cpu, "threads": gemm["threads"],
    "model": "random LLaMA, SmolLM2-135M shape", "optimizer": "lomo", "dtype": dtype,
    "batch": 4, "seq": T, "checkpointing": "on", "steps": len(steps), "warmup_steps": warmup,
    "tokens_per_s_median": round(tps, 1),
    "flops_per_token": flops_per_token, "achieved_gflops": round(gflops, 1),
    "gemm_gflops": gemm["gflops_median"], "fraction_of_gemm": round(gflops / gemm["gflops_median"], 3),
    "peak_rss_bytes": rss_kb * 1024, "tracked": mem,
}
N = 4 * T
floor = mem["parameters"] + (L + 1) * N * d * 4 + V * d * 4 + 4 * ff * d
res["floor_bytes"] = floor
res["rss_over_floor"] = round(rss_kb * 1024 / floor, 3)
res["extra_flags"] = extra
tag = "".join("_" + w.lstrip("-").replace("-", "") for w in extra.split())
out = f"bench/results/train_cpu_{dtype}_seq{T}{tag}_{date}.json"
json.dump(res, open(out, "w"), indent=2)
gib = lambda b: f"{b / 2**30:.3f} GiB"
print(f"\n{date}, {cpu}, {res['threads']} threads -> {out}")
print(f"  tokens/s (median of steps {warmup+1}..{len(steps)})  {tps:.1f}")
print(f"  achieved                          {gflops:.1f} GFLOP/s ({flops_per_token/1e9:.3f} GFLOP/token)")
print(f"  GEMM ceiling (oneDNN sgemm 2048)  {gemm['gflops_median']:.1f} GFLOP/s -> {100*gflops/gemm['gflops_median']:.1f} %")
print(f"  peak RSS                          {gib(rss_kb*1024)}")
print(f"  floor (params + block inputs + one gradient) {gib(floor)} -> peak RSS {rss_kb*1024/floor:.2f}x the floor")
for k in ["parameters", "gradients", "optimizer_states", "activations", "workspace", "peak_total"]:
    print(f"  tracked {k:<25} {gib(mem[k])}")
PY
