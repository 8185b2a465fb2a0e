"""Reads the runs of bench/peer_cpu.sh and writes bench/results/peer_cpu_<date>.json and a table.
  usage: peer_report.py WORK WARMUP SEQ BATCH DTYPE...
"""
import datetime
import json
import platform
import re
import statistics
import sys

work, warmup, T, B = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
dtypes = sys.argv[5:]
cfg = json.load(open("configs/smollm2-135m-shape.json"))
d, L, ff, V = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["intermediate_size"], cfg["vocab_size"]
h, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
hd = d // h
qd, kvd = h * hd, kv * hd
n_matmul = L * (d * qd + 2 * d * kvd + qd * d + 3 * d * ff) + V * d  # weights in matrix products
fwd = 2 * n_matmul + L * 4 * qd * T  # per token: the products, and q·kᵀ, P·v over T keys
flops_per_token = 3 * fwd + fwd      # forward + backward (2x) + the recomputed forward


def peak_rss(path):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read()).group(1)) * 1024


cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")),
           platform.processor())
date = datetime.date.today().isoformat()
res = {"date": date, "cpu": cpu, "model": "random LLaMA, SmolLM2-135M shape (same weights both)",
       "optimizer": "LOMO lr 1e-3", "batch": B, "seq": T, "checkpointing": "on (both)",
       "warmup_steps": warmup, "flops_per_token": flops_per_token, "runs": {}}
gib = lambda b: b / 2**30
rows = []
for dt in dtypes:
    ours_steps = [json.loads(l) for l in open(f"{work}/ours_{dt}.jsonl")]
    ours_tps = statistics.median(s["tokens_per_s"] for s in ours_steps[warmup:])
    peer = json.load(open(f"{work}/peer_{dt}.json"))
    peer_tps = statistics.median(peer["tokens_per_step"] / s for s in peer["seconds"][warmup:])
    gemm = json.load(open(f"{work}/gemm_{dt}.json"))
    mem = json.load(open(f"{work}/out_{dt}/memory.json"))
    ours_rss, peer_rss = peak_rss(f"{work}/ours_time_{dt}.out"), peak_rss(f"{work}/peer_time_{dt}.out")
    N = B * T
    floor = mem["parameters"] + (L + 1) * N * d * 4 + V * d * 4 + 4 * ff * d
    gflops = ours_tps * flops_per_token / 1e9
    auto_steps = [json.loads(l) for l in open(f"{work}/ours_auto_{dt}.jsonl")]
    auto_tps = statistics.median(s["tokens_per_s"] for s in auto_steps[warmup:])
    r = {
        "threads": gemm["threads"], "peer_threads": peer["threads"],
        "ours_tokens_per_s": round(ours_tps, 1), "peer_tokens_per_s": round(peer_tps, 1),
        "speedup": round(ours_tps / peer_tps, 2),
        "ours_peak_rss": ours_rss, "peer_peak_rss": peer_rss,
        "rss_ratio_ours_over_peer": round(ours_rss / peer_rss, 3),
        "peer_rss_after_import": peer["rss_after_import"],
        "ours_first_loss": ours_steps[0]["loss"], "peer_first_loss": peer["losses"][0],
        "ours_last_loss": ours_steps[-1]["loss"], "peer_last_loss": peer["losses"][-1],
        "achieved_gflops": round(gflops, 1), "gemm_ceiling": gemm,
        "fraction_of_ceiling": round(gflops / gemm["gflops_median"], 3),
        "floor_bytes": floor, "rss_over_floor": round(ours_rss / floor, 3),
        "floor_with_workspace_bytes": floor + mem["workspace"],
        "rss_over_floor_with_workspace": round(ours_rss / (floor + mem["workspace"]), 3),
        "tracked": mem, "peer": {k: peer[k] for k in ("torch", "transformers", "attn_implementation")},
        "steps": len(ours_steps),
        "ours_auto_tokens_per_s": round(auto_tps, 1),
        "ours_auto_peak_rss": peak_rss(f"{work}/ours_auto_time_{dt}.out"),
        "auto_over_on": round(auto_tps / ours_tps, 2),
    }
    res["runs"][dt] = r
    rows.append((dt, r))
out = f"bench/results/peer_cpu_{date}.json"
json.dump(res, open(out, "w"), indent=2)
print(f"\n{date}, {cpu}, {rows[0][1]['threads']} threads, batch {B} x seq {T}, LOMO, checkpointing on -> {out}")
print(f"peer: torch {rows[0][1]['peer']['torch']}, transformers {rows[0][1]['peer']['transformers']}, "
      f"attention {rows[0][1]['peer']['attn_implementation']}, lomo-optim")
print("| dtype | ours tok/s | peer tok/s | speed-up | ours RSS | peer RSS | RSS ratio | first loss ours / peer "
      "| GFLOP/s | ceiling | % of ceiling | RSS / floor | RSS / (floor + workspace) | ours, ckpt auto: tok/s, RSS, vs on |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for dt, r in rows:
    print(f"| {dt} | {r['ours_tokens_per_s']} | {r['peer_tokens_per_s']} | {r['speedup']}x "
          f"| {gib(r['ours_peak_rss']):.3f} GiB | {gib(r['peer_peak_rss']):.3f} GiB | {r['rss_ratio_ours_over_peer']} "
          f"| {r['ours_first_loss']:.4f} / {r['peer_first_loss']:.4f} | {r['achieved_gflops']} "
          f"| {r['gemm_ceiling']['gflops_median']} ({r['gemm_ceiling']['gemm']}) | {100 * r['fraction_of_ceiling']:.1f} % "
          f"| {r['rss_over_floor']} | {r['rss_over_floor_with_workspace']} "
          f"| {r['ours_auto_tokens_per_s']}, {gib(r['ours_auto_peak_rss']):.3f} GiB, {r['auto_over_on']}x |")
