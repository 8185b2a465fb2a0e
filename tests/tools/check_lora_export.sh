#!/usr/bin/env bash
# Acceptance check of LoRA's files against peft (not part of CI; needs the fixture venv with
# peft, tests/tools/fixture_venv.sh): on the default model, exported to a Hugging Face folder,
#   1. plain LoRA (base frozen) on all seven targets: peft loads our adapter folder onto the base
#      and gives the per-line losses `lomo score --lora` gives; the --merge run of the same
#      training (same seed, same adapters) is base + s·B·A and gives the same losses;
#   2. LoRA + LOMO (base trained too): the trained base (OUT) with its adapters (OUT/adapter)
#      gives our losses in peft.
# usage: tests/tools/check_lora_export.sh [WORK_DIR]   (default: a temporary folder)
set -euo pipefail
cd "$(dirname "$0")/../.."
python=$(tests/tools/fixture_venv.sh)
work=${1:-$(mktemp -d)}
lomo=./build/lomo
rm -rf "$work" && mkdir -p "$work"
"$lomo" export --out "$work/base" > /dev/null
# Data for scoring: a few lines of random token ids (deterministic), 5 to 64 tokens long.
"$python" - "$work/ids.jsonl" <<'PY'
import json, random, sys
random.seed(0)
with open(sys.argv[1], "w") as f:
    for n in (5, 17, 33, 64):
        f.write(json.dumps({"input_ids": [random.randrange(49152) for _ in range(n)]}) + "\n")
PY
train=(train --model "$work/base" --task choice --data data/glorp/train.jsonl --steps 6
       --batch-size 4 --lora-rank 8 --lora-targets all --lora-lr 2e-3 --checkpointing on)
"$lomo" "${train[@]}" --out "$work/lora" > "$work/lora.log"
"$lomo" "${train[@]}" --merge --out "$work/merged" > "$work/merged.log"
"$lomo" score --model "$work/base" --lora "$work/lora" --data "$work/ids.jsonl" > "$work/lora_scores.jsonl"
echo "plain LoRA (base frozen), and --merge:"
"$python" tests/tools/check_lora_export.py "$work/base" "$work/lora" "$work/ids.jsonl" \
  "$work/lora_scores.jsonl" "$work/merged"
"$lomo" "${train[@]}" --base-lr 0.01 --out "$work/lora_lomo" > "$work/lora_lomo.log"
"$lomo" score --model "$work/lora_lomo" --lora "$work/lora_lomo/adapter" --data "$work/ids.jsonl" \
  > "$work/lora_lomo_scores.jsonl"
echo "LoRA + LOMO (the trained base in OUT, its adapters in OUT/adapter):"
"$python" tests/tools/check_lora_export.py "$work/lora_lomo" "$work/lora_lomo/adapter" "$work/ids.jsonl" \
  "$work/lora_lomo_scores.jsonl"
echo "all LoRA export checks passed ($work)"
