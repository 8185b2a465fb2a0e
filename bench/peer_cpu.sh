#!/usr/bin/env bash
# Side by side on this CPU: `lomo train` against the Python stack it replaces — PyTorch +
# transformers + lomo-optim (bench/peer_lomo.py) — on the same random LLaMA of SmolLM2-135M's
# shape (the same model.safetensors and the same token ids for both), LOMO, lr 1e-3, batch 4,
# seq 512, gradient checkpointing on for both, the same thread count, fp32 and bf16.
# Reports per dtype: median tokens/s over the steps after warm-up, peak RSS (/usr/bin/time -v),
# the ratios, the first-step losses of both (the same model and data: they must agree), our
# achieved GFLOP/s against the GEMM ceiling of this machine for that dtype (oneDNN, 2048³,
# measured in the same run), and the memory floor; and ours once more with --checkpointing auto
# (nothing recomputed when memory allows: the speed-up over `on`).
# The peer is installed with pip into a virtual environment ($LOMO_PEER_VENV, default
# ~/.cache/lomo/peer-venv; PyPI's torch wheel brings its CUDA libraries: ~5.6 GB on disk).
# Writes bench/results/peer_cpu_<date>.json and prints a table.
#   usage: bench/peer_cpu.sh [steps=22] [warmup=2] [dtypes="fp32 bf16"] [seq=512]
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-22}
warmup=${2:-2}
dtypes=${3:-fp32 bf16}
seq=${4:-512}
batch=4
auto_steps=$(( steps < 10 ? steps : 10 ))
threads=$(nproc)
scripts/setup.sh
command -v /usr/bin/time > /dev/null || apt-get install -y -qq time
scripts/build.sh > /dev/null
venv=${LOMO_PEER_VENV:-${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}/peer-venv}
if ! "$venv/bin/python" -c "import torch, transformers, lomo_optim" 2> /dev/null; then
  echo "installing the peer (torch, transformers, lomo-optim) into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q torch transformers lomo-optim
fi
work=runs/bench_peer
rm -rf "$work"
mkdir -p "$work" bench/results
./build/lomo init --config configs/smollm2-135m-shape.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 128 --vocab 49152 --min-len "$seq" --max-len "$seq"
for dt in $dtypes; do
  ./build/gemm_rate 2048 7 "$dt" > "$work/gemm_$dt.json"
  OMP_NUM_THREADS=$threads /usr/bin/time -v ./build/lomo train --model "$work/model" \
    --data "$work/data.jsonl" --out "$work/out_$dt" --optimizer lomo --lr 1e-3 \
    --lr-schedule constant --steps "$steps" --batch-size "$batch" --seq-len "$seq" --dtype "$dt" \
    --shuffle off --checkpointing on --log "$work/ours_$dt.jsonl" \
    > "$work/ours_$dt.out" 2> "$work/ours_time_$dt.out"
  tail -n 12 "$work/ours_$dt.out"
  # Ours again with --checkpointing auto (no memory pressure here: nothing recomputed).
  OMP_NUM_THREADS=$threads /usr/bin/time -v ./build/lomo train --model "$work/model" \
    --data "$work/data.jsonl" --out "$work/out_auto_$dt" --optimizer lomo --lr 1e-3 \
    --lr-schedule constant --steps "$auto_steps" --batch-size "$batch" --seq-len "$seq" \
    --dtype "$dt" --shuffle off --checkpointing auto --log "$work/ours_auto_$dt.jsonl" \
    > "$work/ours_auto_$dt.out" 2> "$work/ours_auto_time_$dt.out"
  grep -E "^ckpt|^done" "$work/ours_auto_$dt.out"
  OMP_NUM_THREADS=$threads /usr/bin/time -v "$venv/bin/python" bench/peer_lomo.py "$work/model" \
    "$work/data.jsonl" --dtype "$dt" --steps "$steps" --batch-size "$batch" --seq-len "$seq" \
    --lr 1e-3 --threads "$threads" > "$work/peer_$dt.json" 2> "$work/peer_time_$dt.out"
  grep "peer step" "$work/peer_time_$dt.out" | tail -n 3
done
python3 bench/peer_report.py "$work" "$warmup" "$seq" "$batch" $dtypes
