#!/usr/bin/env python3
"""Checks that a folder written by `lomo train` / `lomo init` loads in transformers
(AutoModelForCausalLM.from_pretrained) and computes the losses `lomo score` printed.

usage: check_hf_roundtrip.py MODEL_DIR DATA.jsonl SCORES.jsonl
"""
import json
import sys

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

model_dir, data_path, scores_path = sys.argv[1:4]
model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32,
                                             attn_implementation="eager")
model.eval()
ours = [json.loads(l) for l in open(scores_path)]
worst = 0.0
for i, line in enumerate(open(data_path)):
    ids = torch.tensor([json.loads(line)["input_ids"]])
    with torch.no_grad():
        logits = model(ids).logits[0].double()
    loss = F.cross_entropy(logits[:-1], ids[0, 1:]).item()
    rel = abs(loss - ours[i]["loss"]) / abs(loss)
    worst = max(worst, rel)
    assert ours[i]["tokens"] == ids.shape[1] - 1, (i, ours[i])
print(f"{model_dir}: {len(ours)} sequences, transformers vs lomo score: worst relative loss "
      f"difference {worst:.2e}")
assert worst < 1e-5, "lomo's output does not compute what transformers computes"
