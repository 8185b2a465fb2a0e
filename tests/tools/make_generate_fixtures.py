#!/usr/bin/env python3
"""Writes tests/fixtures/generate/greedy.json: what transformers' generate() produces greedily
(do_sample=False) on the committed tiny models (tests/fixtures/{llama_gqa,qwen2_bias,smollm_tied}),
the reference for tests/test_generate.cpp's Generate.GreedyMatchesTransformers.

For each model, a few prompts of random ids (seeded) of different lengths, one of them with
repetition_penalty 1.3 (transformers' RepetitionPenaltyLogitsProcessor), generated in float64
with the eager attention and the float64 patches of make_fixtures.py (softmax and RMSNorm kept in
float64), with the model's own eos_token_id: generation ends early when the model produces it, and
the EOS id is then the last one listed, as generate() returns it.

Greedy output can only be compared token for token when no step is a near tie: for every step the
margin between the best and the second-best logit is recorded, and a prompt whose smallest margin
is below MIN_MARGIN is skipped (the C++ side runs in fp32, whose logits differ from float64 by
~1e-6 relative). The smallest margin kept is written out with each case.

Generated with: Debian python3-torch 1.13 (CPU) in a venv made with --system-site-packages, plus
pip transformers==4.45.2. Run: tests/tools/make_generate_fixtures.sh
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures  # noqa: E402,F401  (its float64 patches of softmax and RMSNorm)

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
MODELS = ["llama_gqa", "qwen2_bias", "smollm_tied"]
# (prompt length, repetition_penalty): greedy as is, and greedy after transformers'
# RepetitionPenaltyLogitsProcessor (which random tiny models need to leave their loops).
CASES = [(1, 1.0), (5, 1.0), (13, 1.0), (7, 1.3)]
MAX_NEW_TOKENS = 24
MIN_MARGIN = 1e-3


def main():
    gen = torch.Generator().manual_seed(20261130)
    out = {"generator": f"transformers {transformers.__version__}, torch {torch.__version__}",
           "max_new_tokens": MAX_NEW_TOKENS, "models": {}}
    for name in MODELS:
        folder = os.path.join(FIXTURES, name, "model")
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager",
                                                     torch_dtype=torch.float32).double().eval()
        cfg = model.config
        eos = cfg.eos_token_id
        cases = []
        for length, penalty in CASES:
            for attempt in range(20):
                prompt = torch.randint(0, cfg.vocab_size, (1, length), generator=gen)
                with torch.no_grad():
                    r = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                                       do_sample=False, max_new_tokens=MAX_NEW_TOKENS,
                                       eos_token_id=eos, pad_token_id=eos,
                                       repetition_penalty=penalty,
                                       output_scores=True, return_dict_in_generate=True)
                margins = []
                for s in r.scores:
                    top2 = torch.topk(s[0], 2).values
                    margins.append(float(top2[0] - top2[1]))
                if min(margins) >= MIN_MARGIN:
                    break
                print(f"{name}: prompt of {length} skipped (margin {min(margins):.2e})")
            else:
                raise SystemExit(f"{name}: no prompt of length {length} without a near tie")
            cases.append({"prompt": prompt[0].tolist(), "repetition_penalty": penalty,
                          "generated": r.sequences[0, length:].tolist(),
                          "min_margin": min(margins)})
            print(f"{name}: prompt {length}, penalty {penalty} -> {len(cases[-1]['generated'])} tokens, "
                  f"min margin {min(margins):.3e}")
        out["models"][name] = {"eos_token_id": eos, "cases": cases}
    path = os.path.join(FIXTURES, "generate", "greedy.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print("wrote", path)


if __name__ == "__main__":
    main()
