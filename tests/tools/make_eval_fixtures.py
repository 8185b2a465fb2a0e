#!/usr/bin/env python3
"""Reference for prompt/completion masking and multiple-choice evaluation (text issue).

Builds tests/fixtures/eval_model/: a small random LLaMA (tied embeddings, vocabulary of the
smollm fixture tokenizer) saved by transformers, with that tokenizer.json and a
tokenizer_config.json naming <|endoftext|> as EOS. Then, from tests/data/*.jsonl:

  expected_prompts.json   the prompt, candidates and label of every example, built here from the
                          paper's templates (an implementation independent of the C++ one)
  eval_reference.json     each candidate's summed NLL of its tokens + EOS after the prompt
                          (float64), and the argmin
  pc_reference.json       prompt/completion batch: mean NLL over completion + EOS tokens, and
                          their count

Token ids come from the Hugging Face tokenizer; scores from transformers with float64 weights
(it returns logits cast to float32, so the reference carries ~1e-7 relative rounding).
"""
import json
import os
import shutil

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from transformers import LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")
OUT = os.path.join(HERE, "..", "fixtures", "eval_model")
EOS = "<|endoftext|>"


def build(task, j):
    """The paper's prompts (design §5), one list entry per example."""
    ny = ["No", "Yes"]
    lab = lambda v: -1 if v is None else int(v)
    if task == "boolq":
        return [(f"{j['passage']} {j['question']}\nAnswer: ", ny, lab(j.get("label")))]
    if task == "rte":
        l = {"entailment": 0, "not_entailment": 1, None: -1}[j.get("label")]
        return [(f"{j['premise']}\nDoes this mean that \"{j['hypothesis']}\" is true? Yes or No?\nAnswer: ", ["Yes", "No"], l)]
    if task == "wic":
        return [(f"Does the word \"{j['word']}\" have the same meaning in these two sentences? Yes, No?\n"
                 f"{j['sentence1']}\n{j['sentence2']}\nAnswer: ", ny, lab(j.get("label")))]
    if task == "wsc":
        t = j["target"]
        return [(f"{j['text']}\nIn the previous sentence, does the pronoun \"{t['span2_text']}\" refer to "
                 f"\"{t['span1_text']}\"? Yes or No?\nAnswer: ", ny, lab(j.get("label")))]
    if task == "multirc":
        out = []
        for q in j["passage"]["questions"]:
            for a in q["answers"]:
                out.append((f"{j['passage']['text']}\nQuestion: {q['question']}\nI found this answer \"{a['text']}\". "
                            f"Is that correct? Yes or No?\nAnswer: ", ny, lab(a.get("label"))))
        return out
    if task == "copa":
        p = j["premise"][:-1] if j["premise"].endswith(".") else j["premise"]
        return [(p + (" so " if j["question"] == "effect" else " because "), [j["choice1"], j["choice2"]], lab(j.get("label")))]
    if task == "choice":
        return [(j["prompt"], j["choices"], lab(j.get("label")))]


def main():
    torch.manual_seed(7)
    tok = Tokenizer.from_file(os.path.join(HERE, "..", "fixtures", "tokenizers", "smollm", "tokenizer.json"))
    eos = tok.token_to_id(EOS)
    cfg = LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=tok.get_vocab_size(), max_position_embeddings=256,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True, bos_token_id=None,
                      eos_token_id=eos, attn_implementation="eager")
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(1.0 + 0.1 * torch.randn(p.shape) if "norm" in n else 0.3 * torch.randn(p.shape))
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    model.save_pretrained(OUT, safe_serialization=True)
    shutil.copy(os.path.join(HERE, "..", "fixtures", "tokenizers", "smollm", "tokenizer.json"), OUT)
    json.dump({"eos_token": EOS, "add_bos_token": False}, open(os.path.join(OUT, "tokenizer_config.json"), "w"))
    m = model.double().eval()

    def nll(ids):  # per-position NLL of token t+1 given ≤ t
        with torch.no_grad():
            logits = m(torch.tensor([ids])).logits[0].double()
        return F.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")

    expected, ref = {}, {}
    for task in ["boolq", "rte", "wic", "wsc", "multirc", "copa", "choice"]:
        exs = []
        for line in open(os.path.join(DATA, task + ".jsonl")):
            exs += build(task, json.loads(line))
        expected[task] = [{"prompt": p, "candidates": c, "label": l} for p, c, l in exs]
        ref[task] = []
        for p, cands, _ in exs:
            pid = tok.encode(p, add_special_tokens=False).ids
            scores, norm = [], []
            for c in cands:
                cid = tok.encode(c, add_special_tokens=False).ids + [eos]
                ids = pid + cid
                s = nll(ids)[len(pid) - 1:].sum().item()
                scores.append(s)
                norm.append(s / len(cid))
            ref[task].append({"scores": scores, "normalized": norm,
                              "argmin": min(range(len(scores)), key=scores.__getitem__),
                              "margin": abs(scores[0] - scores[1])})
    json.dump(expected, open(os.path.join(OUT, "expected_prompts.json"), "w"), indent=1, ensure_ascii=False)
    json.dump(ref, open(os.path.join(OUT, "eval_reference.json"), "w"), indent=1)

    total, count = 0.0, 0
    for line in open(os.path.join(DATA, "prompt_completion.jsonl")):
        j = json.loads(line)
        pid = tok.encode(j["prompt"], add_special_tokens=False).ids
        cid = tok.encode(j["completion"], add_special_tokens=False).ids + [eos]
        total += nll(pid + cid)[len(pid) - 1:].sum().item()
        count += len(cid)
    json.dump({"mean_loss": total / count, "loss_tokens": count}, open(os.path.join(OUT, "pc_reference.json"), "w"))
    print("smallest margin between two candidates:",
          min(r["margin"] for t in ref.values() for r in t), "; loss tokens", count)


if __name__ == "__main__":
    main()
