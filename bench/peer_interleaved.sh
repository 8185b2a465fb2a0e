#!/usr/bin/env bash
# Ours against the Python peer (PyTorch + transformers + lomo-optim, bench/peer_lomo.py), in
# interleaved pairs: round r runs ours then the peer for fp32, then for bf16, so drift of this
# noisy VM hits both alike. Same random LLaMA of SmolLM2-135M's shape and the same token ids for
# both, LOMO lr 1e-3 constant, batch 4 × seq 512, gradient checkpointing on for both, all cores.
# The tokens/s of a run is the median over its steps after the warm-up; the report gives every
# pair's ratio, the median of the ratios and the least favourable pair.
# (bench/peer_cpu.sh is the single-pair version with peak RSS, MFU and --checkpointing auto.)
#   usage: bench/peer_interleaved.sh [rounds=3] [steps=7] [warmup=2] [dtypes="fp32 bf16"]
# Writes bench/results/peer_interleaved_<date>.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-7}
warmup=${3:-2}
dtypes=${4:-fp32 bf16}
seq=512
threads=$(nproc)
scripts/setup.sh > /dev/null
scripts/build.sh > /dev/null
venv=${LOMO_PEER_VENV:-${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}/peer-venv}
if ! "$venv/bin/python" -c "import torch, transformers, lomo_optim" 2> /dev/null; then
  echo "installing the peer (torch, transformers, lomo-optim) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch transformers lomo-optim
fi
work=runs/bench_peer_interleaved
rm -rf "$work"
mkdir -p "$work" bench/results
./build/lomo init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --vocab 49152 --min-len "$seq" \
  --max-len "$seq" > /dev/null
for r in $(seq 1 "$rounds"); do
  for dt in $dtypes; do
    OMP_NUM_THREADS=$threads ./build/lomo train --model "$work/model" --data "$work/data.jsonl" \
      --out "$work/out_${dt}_$r" --optimizer lomo --lr 1e-3 --lr-schedule constant --warmup-ratio 0 \
      --steps "$steps" --batch-size 4 --seq-len "$seq" --dtype "$dt" --shuffle off \
      --checkpointing on --log "$work/ours_${dt}_$r.jsonl" > "$work/ours_${dt}_$r.out"
    rm -rf "$work/out_${dt}_$r"
    OMP_NUM_THREADS=$threads "$venv/bin/python" bench/peer_lomo.py "$work/model" \
      "$work/data.jsonl" --dtype "$dt" --steps "$steps" --batch-size 4 --seq-len "$seq" \
      --lr 1e-3 --threads "$threads" > "$work/peer_${dt}_$r.json" 2> "$work/peer_${dt}_$r.err"
    echo "round $r $dt done"
  done
done
out="bench/results/peer_interleaved_$(date +%F).json"
python3 - "$work" "$rounds" "$warmup" "$out" $dtypes <<'EOF'
import json, statistics, sys
work, rounds, warmup, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
dtypes = sys.argv[5:]
res = {"rounds": rounds, "warmup": warmup, "batch": 4, "seq": 512, "runs": {}}
print("| dtype | round | ours tok/s | peer tok/s | ratio | first loss ours / peer |")
print("|---|---|---|---|---|---|")
for dt in dtypes:
    pairs = []
    for r in range(1, rounds + 1):
        ours = [json.loads(l) for l in open(f"{work}/ours_{dt}_{r}.jsonl")]
        ours = [s for s in ours if "tokens_per_s" in s]
        o = statistics.median(s["tokens_per_s"] for s in ours[warmup:])
        peer = json.load(open(f"{work}/peer_{dt}_{r}.json"))
        p = statistics.median(peer["tokens_per_step"] / s for s in peer["seconds"][warmup:])
        pairs.append({"ours": o, "peer": p, "ratio": o / p, "ours_first_loss": ours[0]["loss"],
                      "peer_first_loss": peer["losses"][0]})
        print(f"| {dt} | {r} | {o:.1f} | {p:.1f} | {o / p:.2f} | "
              f"{ours[0]['loss']:.5f} / {peer['losses'][0]:.5f} |")
    ratios = [x["ratio"] for x in pairs]
    res["runs"][dt] = {"pairs": pairs, "median_ratio": statistics.median(ratios),
                       "least_favourable_ratio": min(ratios),
                       "ours_median": statistics.median(x["ours"] for x in pairs),
                       "peer_median": statistics.median(x["peer"] for x in pairs)}
    print(f"| {dt} | median | {res['runs'][dt]['ours_median']:.1f} | "
          f"{res['runs'][dt]['peer_median']:.1f} | {statistics.median(ratios):.2f} "
          f"(least favourable {min(ratios):.2f}) | |")
json.dump(res, open(out, "w"), indent=1)
EOF
