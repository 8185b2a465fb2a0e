#!/usr/bin/env bash
# Tokenizer throughput against the Hugging Face fast tokenizer (`tokenizers`, Rust) on 10 MB of
# English text (Debian's licence texts, lines shuffled and repeated to 10 MB), with the same
# tokenizer.json (the smollm-style and llama3-style fixtures). Both sides encode line by line;
# HF is measured single-threaded (encode in a loop) and batched with all cores (encode_batch).
# Medians of 3 runs. Writes bench/results/tokenize_<date>.json and prints a table.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh > /dev/null
work=runs/bench_tokenize
mkdir -p "$work" bench/results
venv=$work/venv
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tokenizers==0.20.3"
fi
python3 - "$work/english.txt" <<'PY'
import glob, os, random, sys
lines = []
for p in sorted(glob.glob("/usr/share/common-licenses/*")):
    if os.path.isfile(p):
        lines += [l.rstrip("\n") for l in open(p, encoding="utf-8", errors="replace") if l.strip()]
rng = random.Random(0)
out, size = [], 0
while size < 10_000_000:
    rng.shuffle(lines)
    for l in lines:
        out.append(l)
        size += len(l.encode()) + 1
        if size >= 10_000_000:
            break
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
date=$(date -u +%Y-%m-%d)
results="[]"
for tk in smollm llama3; do
  dir=tests/fixtures/tokenizers/$tk
  ours=$(./build/tokenize_rate "$dir" "$work/english.txt" 3)
  theirs=$("$venv/bin/python" - "$dir/tokenizer.json" "$work/english.txt" <<'PY'
import json, statistics, sys, time
from tokenizers import Tokenizer
tok = Tokenizer.from_file(sys.argv[1])
lines = open(sys.argv[2], encoding="utf-8").read().split("\n")[:-1]
nbytes = sum(len(l.encode()) + 1 for l in lines)
single, batch = [], []
for _ in range(3):
    t0 = time.perf_counter(); n = sum(len(tok.encode(l, add_special_tokens=False).ids) for l in lines)
    single.append(time.perf_counter() - t0)
    t0 = time.perf_counter(); tok.encode_batch(lines, add_special_tokens=False); batch.append(time.perf_counter() - t0)
print(json.dumps({"impl": "hf", "tokens": n, "mb_per_s_single": nbytes / 1e6 / statistics.median(single),
                  "mb_per_s_batch": nbytes / 1e6 / statistics.median(batch)}))
PY
)
  results=$(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); r.append({"tokenizer": sys.argv[2], "lomo": json.loads(sys.argv[3]), "hf": json.loads(sys.argv[4])}); print(json.dumps(r))' "$results" "$tk" "$ours" "$theirs")
done
python3 - "$results" "$date" <<'PY'
import json, sys
r, date = json.loads(sys.argv[1]), sys.argv[2]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
json.dump({"date": date, "cpu": cpu, "text": "10 MB English (Debian licence texts)", "runs": r},
          open(f"bench/results/tokenize_{date}.json", "w"), indent=2)
print(f"{date}, {cpu}: 10 MB of English, line by line, median of 3")
print(f"{'tokenizer':<10} {'lomo MB/s':>10} {'HF 1 thread':>12} {'HF batch':>10} {'ratio (1 thread)':>17} {'tokens equal':>13}")
for x in r:
    l, h = x["lomo"], x["hf"]
    print(f"{x['tokenizer']:<10} {l['mb_per_s']:>10.2f} {h['mb_per_s_single']:>12.2f} {h['mb_per_s_batch']:>10.2f} "
          f"{l['mb_per_s']/h['mb_per_s_single']:>16.2f}x {str(l['tokens']==h['tokens']):>13}")
PY
