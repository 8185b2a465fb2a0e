#!/usr/bin/env bash
# README command 1: set up, build, and fine-tune the built-in default with LOMO.
# Until the default pretrained model arrives, the default is a small random LLaMA made by
# `lomo init` (configs/tiny-llama.json: 4 layers, d_model 128, GQA 4:2, tied embeddings) trained
# on generated sequences (scripts/make_demo_data.py). Prints the held-out loss before and after,
# every step's loss, and the memory table. Output under runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh > /dev/null
run=runs/demo
rm -rf "$run"
mkdir -p "$run"
python3 scripts/make_demo_data.py "$run/train.jsonl" --lines 512 --seed 1
python3 scripts/make_demo_data.py "$run/heldout.jsonl" --lines 64 --seed 2
./build/lomo init --config configs/tiny-llama.json --out "$run/init" --seed 0

mean_loss() {  # mean of the per-line losses printed by lomo score
  ./build/lomo score --model "$1" --data "$run/heldout.jsonl" |
    python3 -c 'import json,sys; l=[json.loads(x)["loss"] for x in sys.stdin]; print(f"{sum(l)/len(l):.4f}")'
}
before=$(mean_loss "$run/init")
./build/lomo train --model "$run/init" --data "$run/train.jsonl" --out "$run/trained" \
  --optimizer lomo --lr 1.0 --clip-grad-norm 1.0 --steps 300 --batch-size 8 --seq-len 96 \
  --log "$run/train_log.jsonl"
after=$(mean_loss "$run/trained")
echo
echo "held-out loss (64 unseen sequences): before ${before}, after ${after}"
echo "trained model: $run/trained (config.json + model.safetensors, loadable by transformers)"
