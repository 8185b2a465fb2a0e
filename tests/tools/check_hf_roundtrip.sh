#!/usr/bin/env bash
# Trains each fixture model two steps with lomo, then checks with transformers that the saved
# folder loads and gives the losses `lomo score` reports. Needs the fixture venv (see
# make_fixtures.sh); not part of CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${LOMO_FIXTURE_VENV:-/opt/lomo-fixtures-venv}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{"input_ids": [1, 5, 9, 13, 17, 21, 25]}\n{"input_ids": [3, 4, 5, 6]}\n{"input_ids": [40, 2, 40, 2, 40]}\n' > "$tmp/data.jsonl"
for m in llama_gqa smollm_tied qwen2_bias; do
  ./build/lomo train --model tests/fixtures/$m/model --data "$tmp/data.jsonl" --out "$tmp/$m" \
    --steps 2 --lr 0.05 > /dev/null
  ./build/lomo score --model "$tmp/$m" --data "$tmp/data.jsonl" > "$tmp/$m.scores"
  "$venv/bin/python" tests/tools/check_hf_roundtrip.py "$tmp/$m" "$tmp/data.jsonl" "$tmp/$m.scores" 2>&1 | grep -v -i warn
done
