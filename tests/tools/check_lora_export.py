#!/usr/bin/env python3
"""Checks LoRA adapters (and optionally a merged model) written by our engine against peft (not
part of CI; needs the fixture venv, tests/tools/fixture_venv.sh, which has peft):

  - ADAPTER_DIR, applied to BASE_DIR with peft's PeftModel.from_pretrained, in float64, must give
    the per-line losses our engine wrote to SCORES.jsonl for the lines of DATA.jsonl (worst
    relative difference < 1e-5);
  - MERGED_DIR (optional), a full model folder with the adapters merged in, must give those same
    losses as the peft model (< 1e-5 relative), and each adapted weight must equal
    W + s B A (s = alpha/r, or alpha/sqrt(r) with use_rslora; A and B read from the adapter file)
    to 1e-6 relative to max|W|; every other weight must equal the base one.

usage: check_lora_export.py BASE_DIR ADAPTER_DIR DATA.jsonl SCORES.jsonl [MERGED_DIR]

DATA.jsonl: one {"input_ids": [...]} per line. SCORES.jsonl: one {"loss": ..., "tokens": ...} per
line of DATA, loss = mean next-token NLL over the line's tokens after the first (one line at a
time, no padding), tokens = how many tokens that mean is over (len(input_ids) - 1).
"""
import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402,F401  (its import patches softmax and RMSNorm to keep float64)

LOSS_RTOL = 1e-5
WEIGHT_RTOL = 1e-6
PREFIX = "base_model.model."


def load(folder):
    m = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32,
                                             attn_implementation="eager")
    return m.double().eval()


def line_losses(model, lines):
    """Mean next-token NLL of each line (None for a line of fewer than 2 tokens), in float64."""
    out = []
    with torch.no_grad():
        for ids in lines:
            if len(ids) < 2:
                out.append(None)
                continue
            x = torch.tensor([ids], dtype=torch.long)
            # model.model + lm_head by hand: the causal-LM forward casts logits to float32
            hidden = model.model(input_ids=x).last_hidden_state
            logits = model.lm_head(hidden)[0]
            out.append(F.cross_entropy(logits[:-1], x[0, 1:]).item())
    return out


def worst_rel(got, want):
    worst, at = 0.0, -1
    for i, (g, w) in enumerate(zip(got, want)):
        if w is None:
            continue
        d = abs(g - w) / max(abs(w), 1e-30)
        if not math.isfinite(g) or d > worst:
            worst, at = (math.inf if not math.isfinite(g) else d), i
    return worst, at


def pattern_value(pattern, module, default):
    """peft's rank_pattern / alpha_pattern lookup: the first key that matches the end of the
    module name."""
    for key, value in pattern.items():
        if re.match(rf"(.*\.)?{key}$", module):
            return value
    return default


def main():
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: check_lora_export.py BASE_DIR ADAPTER_DIR DATA.jsonl SCORES.jsonl [MERGED_DIR]")
    base_dir, adapter_dir, data_path, scores_path = sys.argv[1:5]
    merged_dir = sys.argv[5] if len(sys.argv) == 6 else None

    lines = [json.loads(l)["input_ids"] for l in open(data_path) if l.strip()]
    scores = [json.loads(l) for l in open(scores_path) if l.strip()]
    assert len(scores) == len(lines), f"{len(scores)} scores for {len(lines)} data lines"
    for i, (ids, s) in enumerate(zip(lines, scores)):
        want = max(len(ids) - 1, 0)
        assert s["tokens"] == want, f"line {i}: tokens {s['tokens']}, expected {want}"
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    print(f"adapter: r {cfg['r']}, alpha {cfg['lora_alpha']}, use_rslora {cfg.get('use_rslora', False)}, "
          f"targets {cfg['target_modules']}; {len(lines)} lines, "
          f"{sum(max(len(l) - 1, 0) for l in lines)} scored tokens")
    assert cfg.get("peft_type", "LORA") == "LORA", cfg.get("peft_type")
    assert not cfg.get("use_dora", False), "DoRA adapters are not what this tool checks"
    assert not cfg.get("fan_in_fan_out", False), "fan_in_fan_out adapters are not expected"

    # --- the adapters through peft ---------------------------------------------------------------
    base = load(base_dir)
    base_sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
    pm = PeftModel.from_pretrained(base, adapter_dir).double().eval()
    assert all(p.dtype == torch.float64 for p in pm.parameters())
    n_lora = sum(1 for n, _ in pm.named_parameters() if ".lora_A." in n)
    print(f"peft applied {n_lora} LoRA pairs")
    assert n_lora > 0
    peft_losses = line_losses(pm.base_model.model, lines)
    ours = [s["loss"] for s in scores]
    worst, at = worst_rel(ours, peft_losses)
    print(f"adapters: worst relative loss difference engine vs peft {worst:.2e} (line {at})")
    assert worst < LOSS_RTOL, f"line {at}: engine {ours[at]!r}, peft {peft_losses[at]!r}"
    if merged_dir is None:
        return

    # --- the merged model ------------------------------------------------------------------------
    merged = load(merged_dir)
    merged_losses = line_losses(merged, lines)
    worst, at = worst_rel(merged_losses, peft_losses)
    print(f"merged: worst relative loss difference merged vs peft {worst:.2e} (line {at})")
    assert worst < LOSS_RTOL, f"line {at}: merged {merged_losses[at]!r}, peft {peft_losses[at]!r}"

    ad = load_file(os.path.join(adapter_dir, "adapter_model.safetensors"))
    merged_sd = merged.state_dict()
    missing = sorted(set(base_sd) - set(merged_sd))
    extra = sorted(set(merged_sd) - set(base_sd))
    assert not missing and not extra, f"merged vs base names: missing {missing[:5]}, extra {extra[:5]}"
    adapted, worst, worst_at = set(), 0.0, ""
    for key in sorted(ad):
        if ".lora_A." not in key:
            assert ".lora_B." in key, f"unexpected tensor {key} in the adapter file"
            continue
        assert key.startswith(PREFIX) and key.endswith(".lora_A.weight"), key
        module = key[len(PREFIX):-len(".lora_A.weight")]
        A = ad[key].double()
        B = ad[key.replace(".lora_A.", ".lora_B.")].double()
        r = pattern_value(cfg.get("rank_pattern") or {}, module, cfg["r"])
        alpha = pattern_value(cfg.get("alpha_pattern") or {}, module, cfg["lora_alpha"])
        assert A.shape[0] == r and B.shape[1] == r, (key, tuple(A.shape), tuple(B.shape), r)
        s = alpha / math.sqrt(r) if cfg.get("use_rslora", False) else alpha / r
        layer = pm.get_submodule("base_model.model." + module)
        assert abs(layer.scaling["default"] - s) < 1e-12, (module, layer.scaling["default"], s)
        w = module + ".weight"
        W = base_sd[w]
        want = W + s * (B @ A)
        d = ((merged_sd[w] - want).abs().max() / W.abs().max()).item()
        if d > worst:
            worst, worst_at = d, w
        adapted.add(w)
    print(f"merged: {len(adapted)} adapted weights, worst |W_merged - (W + s B A)| / max|W| "
          f"{worst:.2e} ({worst_at})")
    assert worst < WEIGHT_RTOL, worst_at
    worst_other, other_at = 0.0, ""
    for name, W in base_sd.items():
        if name in adapted:
            continue
        d = ((merged_sd[name] - W).abs().max() / max(W.abs().max().item(), 1e-30)).item()
        if d > worst_other:
            worst_other, other_at = d, name
    print(f"merged: {len(base_sd) - len(adapted)} other tensors, worst relative difference to the "
          f"base {worst_other:.2e} {other_at}")
    assert worst_other < WEIGHT_RTOL, other_at
    print("OK")


if __name__ == "__main__":
    main()
