#!/usr/bin/env python3
"""Writes the tokenizer parity fixtures (tests/fixtures/tokenizers/).

Reference: Hugging Face `tokenizers` (byte-level BPE) and the `sentencepiece` Python package.
No hub is reachable, so the tokenizers are trained here, on a corpus built from Debian's licence
texts, Python's standard library and hand-written multilingual lines, with the exact
pre-tokenizer configurations real models ship:

  smollm   Digits(individual_digits) + ByteLevel(use_regex)            (SmolLM / SmolLM2)
  llama3   Split(llama-bpe regex, isolated) + ByteLevel(no regex),      (LLaMA-3)
           ignore_merges, TemplateProcessing adding <|begin_of_text|>
  qwen2    NFC + Split(qwen2 regex) + ByteLevel(no regex)               (Qwen2)
  gpt2     ByteLevel(use_regex)                                         (GPT-2)
  sp       SentencePiece BPE with byte fallback, trained by Debian's spm_train (LLaMA-1/2 style)

For each tokenizer and each corpus line: the ids without special tokens, and whether decoding
them gives the line back (the reference's own round trip).
"""
import glob
import json
import os
import random
import subprocess
import sys
import tempfile

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "tokenizers")

GPT2_RE = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
             r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
            r"|\s*[\r\n]+|\s+(?!\S)|\s+")

MULTILINGUAL = [
    "Le cœur a ses raisons que la raison ne connaît point.", "Über den Wolken muß die Freiheit wohl grenzenlos sein.",
    "¿Dónde está la biblioteca? Está allí, señor.", "Tiếng Việt có dấu: người, được, những.",
    "Ελληνικά: Γειά σου κόσμε!", "Русский текст: Съешь же ещё этих мягких французских булок.",
    "我们今天去公园散步，天气很好。", "日本語のテキスト：東京は大きな都市です。カタカナ、ひらがな。",
    "한국어 문장: 안녕하세요, 만나서 반갑습니다.", "العربية: مرحبا بالعالم، كيف حالك اليوم؟",
    "עברית: שלום עולם", "हिन्दी: नमस्ते दुनिया, आप कैसे हैं?", "ภาษาไทย: สวัสดีครับ",
    "Emoji: 😀 😂 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🎉", "Math: ∑ᵢ xᵢ² ≤ ∞, ∀ε>0 ∃δ, ½ + ¼ = ¾, Ⅻ, ²³",
    "Arabic digits ٠١٢٣٤٥٦٧٨٩ and Devanagari ०१२३", "Decomposed: e\u0301te\u0301, n\u0303, A\u030a",
    "Zero width: a\u200bb, non-breaking\u00a0space, ideographic\u3000space", "Tabs\tand\t\ttabs",
    "DON'T SHOUT, it's fine. I'LL go; you'VE been; we'Re here; 'tis odd", "quotes ‘curly’ “double” «guillemets»",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>",
    "text<|endoftext|>more text", "<|begin_of_text|>Hello<|eot_id|>", "mixed<|im_end|><|im_start|>tokens",
]


def corpus_lines(rng):
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path):
            lines += [l.rstrip("\n") for l in open(path, encoding="utf-8", errors="replace")]
    prose = [l for l in lines if len(l.strip()) > 20]
    code = []
    for path in sorted(glob.glob("/usr/lib/python3.11/*.py"))[:40]:
        code += [l.rstrip("\n") for l in open(path, encoding="utf-8", errors="replace")]
    code = [l for l in code if l.strip()]
    out = []
    out += rng.sample(prose, 700)
    out += rng.sample(code, 600)
    for _ in range(250):  # numbers in many shapes
        out.append(rng.choice([
            f"{rng.randrange(10**9)}", f"{rng.random()*1000:.4f}", f"{rng.randrange(1, 10**6):,}",
            f"2026-{rng.randrange(1,13):02d}-{rng.randrange(1,29):02d} {rng.randrange(24):02d}:{rng.randrange(60):02d}",
            f"+1 ({rng.randrange(100,999)}) {rng.randrange(100,999)}-{rng.randrange(1000,9999)}",
            f"v{rng.randrange(10)}.{rng.randrange(100)}.{rng.randrange(1000)}", f"x = {rng.randrange(-500, 500)}e{rng.randrange(-9, 9)}",
            f"Total: ${rng.randrange(10**5)}.{rng.randrange(100):02d} (+{rng.randrange(100)}%)"]))
    for _ in range(200):  # whitespace runs, newlines, CRLF
        words = rng.sample(prose, 2)
        sep = rng.choice(["  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "    \n", "\t\t", "\u00a0", "\u3000"])
        out.append(words[0][:40] + sep + words[1][:40] + rng.choice(["", " ", "  ", "\n", "   \n"]))
    for _ in range(300):  # multilingual lines and mixtures
        k = rng.randrange(1, 4)
        out.append(rng.choice([" ", "", "\n", " - "]).join(rng.sample(MULTILINGUAL, k)))
    out += MULTILINGUAL
    out += ["", " ", "  leading", "trailing  ", "\n", "a", "'", "''", "'s", " 's", "''s", "it''s", "...", "!!!???",
            "x" * 300, "ab" * 100, "1" * 50, "   \n\n   \t"]
    return out


def train_bpe(name, lines, extra_text):
    if name == "smollm":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
        specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    elif name == "gpt2":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        specials = ["<|endoftext|>"]
    elif name in ("llama3", "qwen2"):
        tok = Tokenizer(models.BPE(ignore_merges=(name == "llama3")))
        if name == "qwen2":
            tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_RE if name == "llama3" else QWEN2_RE), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
        specials = (["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"] if name == "llama3"
                    else ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=3000, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(lines + extra_text, trainer=trainer)
    if name == "llama3":
        bos = tok.token_to_id("<|begin_of_text|>")
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", bos)])
    return tok, specials


def main():
    rng = random.Random(20261128)
    lines = corpus_lines(rng)
    extra = [l.rstrip("\n") for p in sorted(glob.glob("/usr/share/common-licenses/*")) if os.path.isfile(p)
             for l in open(p, encoding="utf-8", errors="replace")]
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "corpus.jsonl"), "w") as f:
        for l in lines:
            f.write(json.dumps({"text": l}, ensure_ascii=False) + "\n")
    summary = {}
    for name in ["smollm", "llama3", "qwen2", "gpt2"]:
        tok, specials = train_bpe(name, lines, extra)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        tok.save(os.path.join(d, "tokenizer.json"))
        tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # what we read is what we test
        with open(os.path.join(d, "reference.jsonl"), "w") as f:
            rt = 0
            for l in lines:
                ids = tok.encode(l, add_special_tokens=False).ids
                ok = tok.decode(ids, skip_special_tokens=False) == l
                rt += ok
                f.write(json.dumps({"ids": ids, "roundtrip": ok}) + "\n")
        with_specials = tok.encode("Hello world").ids
        json.dump({"hello_world_with_specials": with_specials}, open(os.path.join(d, "meta.json"), "w"))
        summary[name] = (tok.get_vocab_size(), rt)
    # SentencePiece, trained by Debian's spm_train, referenced by the Python package.
    d = os.path.join(OUT, "sp")
    os.makedirs(d, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as t:
        for l in lines + extra:
            if l.strip():
                t.write(l.replace("\n", " ").replace("\r", " ") + "\n")
    subprocess.run(["spm_train", f"--input={t.name}", f"--model_prefix={d}/tokenizer", "--vocab_size=1000",
                    "--model_type=bpe", "--byte_fallback=true", "--character_coverage=0.9995",
                    "--minloglevel=2"], check=True)
    os.remove(f"{d}/tokenizer.vocab")
    sp = spm.SentencePieceProcessor(model_file=f"{d}/tokenizer.model")
    with open(os.path.join(d, "reference.jsonl"), "w") as f:
        rt = 0
        for l in lines:
            ids = sp.encode(l)
            ok = sp.decode(ids) == l
            rt += ok
            f.write(json.dumps({"ids": ids, "roundtrip": ok}) + "\n")
    summary["sp"] = (sp.get_piece_size(), rt)
    for k, (v, rt) in summary.items():
        print(f"{k}: vocab {v}, {len(lines)} lines, {rt} round-trip", file=sys.stderr)


if __name__ == "__main__":
    main()
