#!/usr/bin/env bash
# The long form of tests/test_checkpoint.cpp's SIGKILL test: `lomo train --save-every 1` killed
# by SIGKILL KILLS times at random moments (seeded), each attempt resuming the newest checkpoint.
# After every kill the newest checkpoint must be whole (checkpoint.json parses; state.safetensors'
# header covers the file exactly) and never older than the one before; at the end the run is
# resumed for 5 more steps and must equal, byte for byte, an uninterrupted run of as many steps.
#   usage: bench/kill_loop.sh [kills=200] [seed=1] [dtype=bf16]
# Writes bench/results/kill_loop_<date>.json.
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${1:-200}
seed=${2:-1}
dtype=${3:-bf16}
scripts/build.sh > /dev/null
work=runs/kill_loop
rm -rf "$work"
mkdir -p "$work" bench/results
./build/lomo init --config configs/tiny-llama.json --out "$work/model" --seed 0 > /dev/null
python3 scripts/make_demo_data.py "$work/data.jsonl" --lines 64 --seed 1 > /dev/null
common=(./build/lomo train --model "$work/model" --data "$work/data.jsonl" --batch-size 4
  --dtype "$dtype" --threads 1 --lr-schedule constant --warmup-ratio 0)
ckpts="$work/ckpts"
RANDOM=$seed
newest=0
killed=0
for ((i = 0; i < kills; ++i)); do
  resume=()
  [[ -d $ckpts ]] && ls "$ckpts" | grep -qx 'step-[0-9]\{8\}' && resume=(--resume "$ckpts")
  "${common[@]}" --steps 100000000 --save-every 1 --keep 2 --checkpoint-dir "$ckpts" \
    --out "$work/out_$i" "${resume[@]}" > /dev/null 2>&1 &
  pid=$!
  sleep "0.$(printf '%03d' $((RANDOM % 900 + 50)))"
  kill -KILL "$pid" 2> /dev/null && killed=$((killed + 1)) || true
  wait "$pid" 2> /dev/null || true
  step=$(python3 - "$ckpts" <<'PY'
import json, os, re, struct, sys
d = sys.argv[1]
steps = sorted(n for n in os.listdir(d) if re.fullmatch(r"step-\d{8}", n)) if os.path.isdir(d) else []
if not steps:
    print(0); sys.exit()
c = os.path.join(d, steps[-1])
meta = json.load(open(os.path.join(c, "checkpoint.json")))
path = os.path.join(c, "state.safetensors")
raw = open(path, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
end = max(v["data_offsets"][1] for k, v in header.items() if k != "__metadata__")
assert 8 + n + end == len(raw), f"{path}: torn ({8 + n + end} != {len(raw)})"
print(meta["step"])
PY
)
  if ((step < newest)); then echo "kill $i: the newest checkpoint went back from $newest to $step"; exit 1; fi
  newest=$step
done
target=$((newest + 5))
"${common[@]}" --steps "$target" --out "$work/final" --resume "$ckpts" --checkpoint-dir "$work/ckpts_final" > /dev/null
"${common[@]}" --steps "$target" --out "$work/whole" > /dev/null
same=false
cmp -s "$work/final/model.safetensors" "$work/whole/model.safetensors" && same=true
date=$(date -u +%Y-%m-%d)
out="bench/results/kill_loop_${date}.json"
printf '{"date": "%s", "kills": %d, "seed": %d, "dtype": "%s", "newest_checkpoint_step": %d, "resumed_to": %d, "final_model_identical": %s}\n' \
  "$date" "$killed" "$seed" "$dtype" "$newest" "$target" "$same" | tee "$out"
[[ $same == true ]]
