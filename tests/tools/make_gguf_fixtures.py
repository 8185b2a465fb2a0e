#!/usr/bin/env python3
"""GGUF reference fixtures (tests/fixtures/gguf/), from independent readers:

  dequant.json        random blocks of every ggml type we read, and their values dequantised by
                      the `gguf` Python package (as uint32 bit patterns: the test is bit-exact)
  smollm2_logits.*    the default model (SmolLM2-135M-Instruct Q4_1, from the local cache)
                      loaded by transformers from the GGUF file: the token ids of a few prompts
                      (.json) and their logits (.safetensors: last position in full as last.<i>,
                      the first 128 vocabulary entries at every position as head.<i>)
  smollm2_ids.jsonl   the ids Hugging Face `tokenizers` gives for every line of the tokenizer
                      corpus (tests/fixtures/tokenizers/corpus.jsonl), without special tokens,
                      with the vocabulary and merges read from the GGUF by the `gguf` package and
                      SmolLM2's own pre-tokenizer (Digits(individual_digits) + ByteLevel, what
                      tokenizer.ggml.pre = "smollm" names and the model's tokenizer.json uses).
                      transformers 4.45's GGUF tokenizer conversion drops the Digits step and
                      differs on 96 of the 2,093 lines (spaces before digits), so it is not used.

transformers 4.45 loads this tied-embedding GGUF with an untied, randomly initialised lm_head;
we tie it to the embedding (as the file means) before computing logits.
Needs: the fixture venv plus pip gguf and accelerate. usage: make_gguf_fixtures.py [GGUF]
"""
import json
import os
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
from gguf.quants import dequantize
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "fixtures", "gguf")
CACHE = os.environ.get("LOMO_CACHE", os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "lomo"))
GGUF = sys.argv[1] if len(sys.argv) > 1 else os.path.join(CACHE, "SmolLM2-135M-Instruct.Q4_1.gguf")

# (type, elements per block, bytes per block, byte offsets of f16 scale fields)
TYPES = [(T.F16, 1, 2, []), (T.BF16, 1, 2, []), (T.Q4_0, 32, 18, [0]), (T.Q4_1, 32, 20, [0, 2]),
         (T.Q5_0, 32, 22, [0]), (T.Q5_1, 32, 24, [0, 2]), (T.Q8_0, 32, 34, [0]),
         (T.Q4_K, 256, 144, [0, 2]), (T.Q6_K, 256, 210, [208])]


def dequant_fixture(rng):
    out = {}
    for t, bs, bb, scales in TYPES:
        nblocks = 64 if bs == 1 else (3 if bs == 256 else 6)
        raw = rng.integers(0, 256, size=(nblocks, bb), dtype=np.uint8)
        for off in scales:  # finite, moderate scales: random bytes could be inf/NaN
            raw[:, off:off + 2] = np.frombuffer(rng.uniform(-2, 2, nblocks).astype(np.float16).tobytes(),
                                                dtype=np.uint8).reshape(nblocks, 2)
        if t in (T.F16, T.BF16):  # finite values
            vals = rng.uniform(-100, 100, nblocks).astype(np.float32)
            if t == T.F16:
                raw = np.frombuffer(vals.astype(np.float16).tobytes(), dtype=np.uint8).reshape(nblocks, 2).copy()
            else:
                raw = np.frombuffer((vals.view(np.uint32) >> 16).astype(np.uint16).tobytes(),
                                    dtype=np.uint8).reshape(nblocks, 2).copy()
        flat = raw.reshape(-1)
        vals = dequantize(flat, t).astype(np.float32).reshape(-1)
        out[t.name] = {"type": int(t), "elements": int(nblocks * bs), "raw_hex": flat.tobytes().hex(),
                       "expected_bits": vals.view(np.uint32).tolist()}
    return out


def smollm_tokenizer(path):
    """SmolLM2's tokenizer, rebuilt from the GGUF's vocabulary, merges and token types."""
    r = GGUFReader(path)
    def strings(key):
        f = r.fields[key]
        return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
    tokens, merges = strings("tokenizer.ggml.tokens"), strings("tokenizer.ggml.merges")
    types = [int(r.fields["tokenizer.ggml.token_type"].parts[i][0]) for i in r.fields["tokenizer.ggml.token_type"].data]
    tk = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)},
                              merges=[tuple(m.split(" ", 1)) for m in merges]))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tk.decoder = decoders.ByteLevel()
    tk.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                           for i, t in enumerate(types) if t == 3])
    tk.add_tokens([AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == 4])
    return tk


def main():
    os.makedirs(OUT, exist_ok=True)
    json.dump(dequant_fixture(np.random.default_rng(1234)), open(os.path.join(OUT, "dequant.json"), "w"))
    d, f = os.path.dirname(GGUF), os.path.basename(GGUF)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    ref_tok = smollm_tokenizer(GGUF)
    corpus = [json.loads(l)["text"] for l in open(os.path.join(HERE, "..", "fixtures", "tokenizers", "corpus.jsonl"))]
    with open(os.path.join(OUT, "smollm2_ids.jsonl"), "w") as out:
        for line in corpus:
            out.write(json.dumps(ref_tok.encode(line, add_special_tokens=False).ids) + "\n")
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, torch_dtype=torch.float32)
    model.lm_head.weight = model.model.embed_tokens.weight  # tied in the file
    model.eval()
    prompts = ["The capital of France is", "def fibonacci(n):\n    if n < 2:", "Question: Is 4718 a glorp number?\nAnswer: ",
               "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"]
    res, tensors = [], {}
    for i, p in enumerate(prompts):
        ids = tok(p, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].float()
        res.append({"prompt": p, "ids": ids})
        tensors[f"last.{i}"] = logits[-1].contiguous()
        tensors[f"head.{i}"] = logits[:, :128].contiguous()
    json.dump(res, open(os.path.join(OUT, "smollm2_logits.json"), "w"), indent=1)
    save_file(tensors, os.path.join(OUT, "smollm2_logits.safetensors"))
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
