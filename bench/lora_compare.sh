#!/usr/bin/env bash
# The paper's LoRA vs LOMO vs LoRA+LOMO comparison, on the default model (SmolLM2-135M-Instruct,
# the GGUF in ~/.cache/lomo) and the demo task (data/glorp: train on train.jsonl, held-out
# accuracy on heldout.jsonl, --task choice). Every run: 40 steps, batch 8, seq-len default,
# checkpointing off (as scripts/demo.sh), evaluation every 10 steps, the same --seed.
#   zero-shot   the step-0 evaluation (the same in every run; checked)
#   LoRA        rank 8, targets all, base frozen (--base-lr 0), --lora-lr in {3e-4, 1e-3, 3e-3}
#   LOMO        the demo's command: --lr 0.05 --clip-grad-norm 1.0
#   LoRA+LOMO   rank 8, targets all, --base-lr 0.05 --clip-grad-norm 1.0, --lora-lr as LoRA's
# Runs one after another (never in parallel), under nice -n 5. Work files go to runs/lora_compare/
# (git-ignored); writes bench/results/lora_compare_<date>.md.
#   usage: bench/lora_compare.sh [seed=0]
#   REPORT_ONLY=1 bench/lora_compare.sh: no runs, rewrite the report from the runs in runs/lora_compare/.
# Does not build: uses ./build/lomo as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
seed=${1:-0}
lomo=./build/lomo
[ -x "$lomo" ] || { echo "no $lomo: build first (scripts/build.sh)" >&2; exit 1; }
work=runs/lora_compare
if [ "${REPORT_ONLY:-0}" != 1 ]; then
  rm -rf "$work"
  mkdir -p "$work"
  date -u +%Y-%m-%d > "$work/date"
fi
mkdir -p bench/results
date=$(cat "$work/date")
common=(--task choice --data data/glorp/train.jsonl --eval-data data/glorp/heldout.jsonl
  --steps 40 --batch-size 8 --eval-every 10 --checkpointing off --seed "$seed")
lora=(--lora-rank 8 --lora-targets all)

run() {  # run NAME METHOD SETTINGS FLAGS...
  local name=$1 method=$2 settings=$3
  shift 3
  local cmd=(nice -n 5 "$lomo" train "${common[@]}" "$@" --out "$work/$name/model" --log "$work/$name/log.jsonl")
  mkdir -p "$work/$name"
  printf '%s\n' "${cmd[*]}" > "$work/$name/command.txt"
  echo "== $name: ${cmd[*]}"
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  "${cmd[@]}" > "$work/$name/stdout.txt" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  grep -E '^(eval    (step|accuracy)|done)' "$work/$name/stdout.txt" || true
  if [ "$rc" -ne 0 ]; then
    echo "!! $name exited with status $rc; the last lines:" >&2
    tail -5 "$work/$name/stdout.txt" >&2
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$method" "$settings" "$rc" \
    "$(python3 -c "print(round($t1 - $t0, 1))")" >> "$work/runs.tsv"
}

if [ "${REPORT_ONLY:-0}" != 1 ]; then
: > "$work/runs.tsv"
start=$(date +%s)
for llr in 3e-4 1e-3 3e-3; do
  run "lora_lr$llr" "LoRA (base frozen)" "r 8, alpha 16, all targets, lora-lr $llr" \
    "${lora[@]}" --lora-lr "$llr"
done
run lomo "LOMO" "lr 0.05, clip-grad-norm 1.0 (the demo)" --lr 0.05 --clip-grad-norm 1.0
for llr in 3e-4 1e-3 3e-3; do
  run "lora_lomo_lr$llr" "LoRA + LOMO" "r 8, alpha 16, all targets, base-lr 0.05, clip 1.0, lora-lr $llr" \
    "${lora[@]}" --base-lr 0.05 --clip-grad-norm 1.0 --lora-lr "$llr"
done
echo $(( $(date +%s) - start )) > "$work/total_s"
fi
total=$(cat "$work/total_s")

python3 - "$work" "$date" "$total" "$seed" <<'PY'
import json, re, statistics, sys, platform, os
work, date, total, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
UNIT = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}
SIZE = r"([\d.]+) (B|KiB|MiB|GiB)"
def mib(v, u):
    return float(v) * UNIT[u]
rows = []
for line in open(f"{work}/runs.tsv"):
    name, method, settings, rc, wall = line.rstrip("\n").split("\t")
    out = open(f"{work}/{name}/stdout.txt").read()
    cmd = open(f"{work}/{name}/command.txt").read().strip()
    r = dict(name=name, method=method, settings=settings, rc=int(rc), wall=float(wall), cmd=cmd)
    r["evals"] = {int(s): (float(a), f"{k}/{n}") for s, a, k, n in
                  re.findall(r"^eval +step (\d+): accuracy ([\d.]+) \((\d+)/(\d+)\)", out, re.M)}
    m = re.search(r"^eval +accuracy before training ([\d.]+), after ([\d.]+) \(best ([\d.]+) at step (\d+)\)", out, re.M)
    r["summary"] = m.groups() if m else None
    m = re.search(r"^done +loss ([\d.naif]+) -> ([\d.naif]+) in ([\d.]+) s \(([\d.]+) tokens/s\)", out, re.M)
    r["done"] = m.groups() if m else None
    mem = {}
    for key in ("parameters", "gradients", "optimizer_states", "activations", "workspace", "total \\(tracked\\)"):
        m = re.search(rf"^  {key} +{SIZE} +{SIZE}", out, re.M)
        if m:
            mem[key.replace("\\", "")] = mib(m.group(3), m.group(4))
    m = re.search(rf"^  process peak RSS +{SIZE}", out, re.M)
    if m:
        mem["rss"] = mib(m.group(1), m.group(2))
    r["mem"] = mem
    m = re.search(rf"^memory +predicted {SIZE}", out, re.M)
    r["predicted"] = mib(m.group(1), m.group(2)) if m else None
    m = re.search(rf"^  total \(tracked\) +{SIZE}", out, re.M)
    r["tracked_current"] = mib(m.group(1), m.group(2)) if m else None
    log = f"{work}/{name}/log.jsonl"
    steps = [json.loads(l) for l in open(log)] if os.path.exists(log) else []
    tps = [s["tokens_per_s"] for s in steps if "tokens_per_s" in s]
    r["step_tps_median"] = statistics.median(tps) if tps else None
    r["log_peak_mib"] = max((s.get("memory_peak_bytes", 0) for s in steps), default=0) / 2**20
    r["log_rss_mib"] = max((s.get("rss_bytes", 0) for s in steps), default=0) / 2**20
    r["lr"] = re.search(r"lora-lr (\S+)$", settings).group(1) if "lora-lr" in settings else None
    rows.append(r)

def after(r):
    return float(r["summary"][1]) if r["summary"] else -1.0
# The best lr per swept method: the highest held-out accuracy after step 40; every lr tied at it is marked.
best = {}
for r in rows:
    if r["lr"] is not None and r["rc"] == 0:
        top = max(after(q) for q in rows if q["method"] == r["method"] and q["lr"] is not None)
        if after(r) == top:
            best.setdefault(r["method"], []).append(r)
zs = {r["evals"].get(0) for r in rows if 0 in r["evals"]}

def fmt_acc(r, step):
    e = r["evals"].get(step)
    return f"{e[0]:.4f} ({e[1]})" if e else "–"

L = []
L.append(f"# LoRA vs LOMO vs LoRA+LOMO on the glorp task ({date})\n")
L.append(f"Model: SmolLM2-135M-Instruct (the default GGUF, Q4_1 weights dequantised to fp32 for training). "
         f"Task: `--task choice`, train data/glorp/train.jsonl (141 lines), held-out data/glorp/heldout.jsonl "
         f"(46 items, accuracy = correct/46). All runs: 40 steps, batch 8, default seq-len, `--checkpointing off`, "
         f"`--eval-every 10`, `--seed {seed}`, fp32, linear schedule with 10% warm-up (the defaults). "
         f"Produced by `bench/lora_compare.sh` on {date}; total wall time {total} s ({total/60:.1f} min) for {len(rows)} runs, "
         f"run one after another under `nice -n 5`.\n")
L.append(f"Machine: {platform.machine()} VM, {os.cpu_count()} cores — a noisy 2-core VM shared with another engineer's "
         f"builds; every number is a single run, and tokens/s in particular is noisy.\n")
if len(zs) == 1:
    z = zs.pop()
    L.append(f"**Zero-shot** (step-0 evaluation, identical in all {len(rows)} runs): held-out accuracy **{z[0]:.4f} ({z[1]})**.\n")
else:
    L.append(f"**Zero-shot**: the step-0 evaluations DIFFER between runs: {sorted(zs)}.\n")
L.append("| method | settings | before | after (step 40) | best (step) | acc @10/20/30 | peak tracked MiB (params / grads / optim states / activations / workspace) | peak RSS MiB | train tok/s (`done`) | median step tok/s | wall s |")
L.append("|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    tied = best.get(r["method"], [])
    mark = (" **(best lr)**" if len(tied) == 1 else " **(best lr, tied)**") if r in tied else ""
    if r["summary"]:
        b, a, bb, bs = r["summary"]
        before, aft, bst = f"{float(b):.4f}", f"{float(a):.4f}", f"{float(bb):.4f} (step {bs})"
    else:
        before = aft = bst = f"– (exit {r['rc']})"
    mid = " / ".join(f"{r['evals'][s][0]:.3f}" if s in r["evals"] else "–" for s in (10, 20, 30))
    m = r["mem"]
    memcell = (f"{m['total (tracked)']:.1f} ({m['parameters']:.1f} / {m['gradients']:.1f} / {m['optimizer_states']:.1f} / "
               f"{m['activations']:.1f} / {m['workspace']:.1f})") if "total (tracked)" in m else "–"
    rss = f"{m['rss']:.1f}" if "rss" in m else "–"
    tps = r["done"][3] if r["done"] else "–"
    stps = f"{r['step_tps_median']:.0f}" if r["step_tps_median"] else "–"
    L.append(f"| {r['method']}{mark} | {r['settings']} | {before} | {fmt_acc(r, 40) if 40 in r['evals'] else aft} | {bst} | {mid} | {memcell} | {rss} | {tps} | {stps} | {r['wall']:.0f} |")
L.append("")
L.append("Columns: *before/after/best* are the engine's `eval accuracy before training ..., after ... (best ... at step ...)` line; "
         "*acc @10/20/30* the intermediate evaluations; memory is the `peak` column of the engine's memory table "
         "(`total (tracked)` and its rows) and `process peak RSS`; *train tok/s (`done`)* is the `done` line's figure "
         "(training tokens over the wall time of the training loop, which includes the evaluations at steps 10–40 but not "
         "the step-0 one, so it is far below the per-step rate); *median step tok/s* is the median of the `--log` "
         "per-step `tokens_per_s`. The glorp sequences are short (about 13 tokens each), so tokens/s is low for all methods.\n")
same = [r for r in rows if r["predicted"] is not None and r["mem"].get("total (tracked)") == r["predicted"] == r["tracked_current"]]
L.append(f"Memory note: in {len(same)} of {len(rows)} runs the tracked total's `current` and `peak` columns at the end of the run "
         "both equal the planner's `memory predicted` line to the 0.01 MiB, so the tracked table appears to count the buffers the "
         "engine reserves up front (and keeps to the end), not a sampled high-water mark; process peak RSS is the independent "
         "measurement. The `--log` per-step `memory_peak_bytes` and `rss_bytes` agree with the table (largest per run: "
         + ", ".join(f"{r['name']} {r['log_peak_mib']:.1f} / {r['log_rss_mib']:.1f} MiB" for r in rows) + ").\n")
L.append("Where the memory goes: LoRA with a frozen base keeps no base gradient (its 9.3 MiB of gradients and 18.6 MiB of "
         "AdamW states are the 2.44 M adapter parameters'; `parameters` includes the adapters). LOMO keeps no optimizer state, but "
         "its `gradients` row holds the tied embedding's gradient (49152 × 576 fp32 = 108.0 MiB) plus one layer's; LoRA + LOMO "
         "pays both. Activations and workspace are the same in all runs (`--checkpointing off`, same batch).\n")
sat = [r for r in rows if r["summary"] and float(r["summary"][1]) == 1.0]
L.append(f"Ceiling: {len(sat)} of {len(rows)} runs end at 46/46, so the accuracy after 40 steps barely separates the methods "
         "(and the 'best lr' ties are ties at the ceiling); the evaluations at steps 10 and 20 show how fast each run learns, "
         "and with one seed and 46 items a difference of a few items is within noise.\n")
L.append("## Learning rate: the honest caveat\n")
for meth, rs in best.items():
    lrs = " and ".join(f"**{r['lr']}**" for r in rs)
    L.append(f"- {meth}: the best --lora-lr by held-out accuracy after 40 steps is {lrs} ({after(rs[0]):.4f}"
             + (", a tie" if len(rs) > 1 else "") + ").")
L.append("")
L.append("Choosing the learning rate by held-out accuracy is tuning on the evaluation set: the 'best lr' rows are "
         "optimistic (there is no separate validation split, and 46 items give a standard error of about 7 points "
         "at accuracy 0.5). LOMO's lr (0.05) was not swept here — it is the demo's value — so the comparison "
         "with a swept LoRA favours LoRA, if anything. For a comparison without that selection, the fixed lr 1e-3 rows:\n")
L.append("| method (fixed lora-lr 1e-3; LOMO at its demo lr 0.05) | before | after | best (step) |")
L.append("|---|---|---|---|")
for r in rows:
    if r["lr"] in (None, "1e-3"):
        if r["summary"]:
            b, a, bb, bs = r["summary"]
            L.append(f"| {r['method']} ({r['settings']}) | {float(b):.4f} | {float(a):.4f} | {float(bb):.4f} (step {bs}) |")
        else:
            L.append(f"| {r['method']} ({r['settings']}) | – | – (exit {r['rc']}) | – |")
L.append("")
L.append("## Commands (exact, in the order run)\n")
L.append("```")
for r in rows:
    L.append(r["cmd"])
L.append("```")
L.append("")
path = f"bench/results/lora_compare_{date}.md"
open(path, "w").write("\n".join(L) + "\n")
print("\n".join(L))
print(f"wrote {path}")
PY
