#!/usr/bin/env python3
"""Checks `lomo export` output with transformers (not part of CI; needs the fixture venv):
a Hugging Face folder and a GGUF file exported from the default model must load in
transformers and reproduce the reference logits of tests/fixtures/gguf/ (those transformers
computed from the original Q4_1 file), and the folder's tokenizer must give the reference ids.

usage: check_export.py HF_DIR FILE.gguf
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
FX = os.path.join(HERE, "..", "fixtures", "gguf")
hf_dir, gguf_path = sys.argv[1], sys.argv[2]
prompts = json.load(open(os.path.join(FX, "smollm2_logits.json")))
ref = load_file(os.path.join(FX, "smollm2_logits.safetensors"))


def check(model, name):
    worst = 0.0
    for i, p in enumerate(prompts):
        with torch.no_grad():
            logits = model(torch.tensor([p["ids"]])).logits[0].float()
        want = ref[f"last.{i}"]
        worst = max(worst, ((logits[-1] - want).abs().max() / want.abs().max()).item())
    print(f"{name}: worst relative logit difference vs the reference {worst:.2e}")
    assert worst < 1e-4, name


check(AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32).eval(), "HF folder")
tok = AutoTokenizer.from_pretrained(hf_dir)
corpus = [json.loads(l)["text"] for l in open(os.path.join(HERE, "..", "fixtures", "tokenizers", "corpus.jsonl"))]
want = [json.loads(l) for l in open(os.path.join(FX, "smollm2_ids.jsonl"))]
same = sum(tok(t, add_special_tokens=False)["input_ids"] == w for t, w in zip(corpus, want))
print(f"HF folder tokenizer: {same}/{len(corpus)} corpus lines equal to the reference")
assert same == len(corpus)
g = AutoModelForCausalLM.from_pretrained(os.path.dirname(gguf_path), gguf_file=os.path.basename(gguf_path),
                                         torch_dtype=torch.float32)
g.lm_head.weight = g.model.embed_tokens.weight  # transformers 4.45 unties GGUF embeddings
check(g.eval(), "GGUF file")
