#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/seed-*): small valid files
of every form each reader accepts, plus a few edge cases. Standard library only; deterministic.
Inputs the fuzzers found are kept beside them as regress-* files (not written here).

  safetensors     a tiny LLaMA (TINY_CONFIG, the config fuzz/safetensors_fuzz.cpp pairs it with)
                  in F32 and in BF16/F16, every dtype, metadata, empty tensors, broken headers
  gguf            tiny LLaMA / Qwen2 models whose tensors use every type we dequantise, with an
                  embedded byte-level BPE vocabulary (smollm, llama-bpe, qwen2 pre-tokenizers);
                  one file with a block of each quantised type; truncated and corrupt headers
  tokenizer_json  the tokenizer fixtures (tests/fixtures/tokenizers) cut to their first tokens
                  and the merges among them, each pre-tokenizer; one with text after a NUL byte
  sentencepiece   the LLaMA-style fixture model cut to its special and byte pieces and the first
                  normal ones, identity normaliser, as BPE, Unigram, char and word models
  config          the fixtures' config.json files and variants (Mistral, Qwen2, rope scalings)
  jsonl           every data form and the first lines of every task sample (tests/data)

usage: fuzz/make_seeds.py   (run from anywhere; rewrites fuzz/corpus/*/seed-*)
"""
import glob
import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

# Keep in step with kTinyConfig in fuzz/safetensors_fuzz.cpp.
TINY_CONFIG = {"hidden_size": 8, "num_hidden_layers": 1, "num_attention_heads": 2,
               "num_key_value_heads": 1, "intermediate_size": 16, "vocab_size": 16}


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


def bf16_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16


# ---- safetensors ----------------------------------------------------------------------------

def llama_tensors(c):
    """(name, shape) of every tensor of a LLaMA config, as model/params.cpp lists them."""
    d, ff, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    hd = d // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    t = [("model.embed_tokens.weight", [v, d])]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        t += [(p + "input_layernorm.weight", [d]), (p + "self_attn.q_proj.weight", [q, d]),
              (p + "self_attn.k_proj.weight", [kv, d]), (p + "self_attn.v_proj.weight", [kv, d]),
              (p + "self_attn.o_proj.weight", [d, q]),
              (p + "post_attention_layernorm.weight", [d]), (p + "mlp.gate_proj.weight", [ff, d]),
              (p + "mlp.up_proj.weight", [ff, d]), (p + "mlp.down_proj.weight", [d, ff])]
    return t + [("model.norm.weight", [d]), ("lm_head.weight", [v, d])]


def encode(dtype, values):
    if dtype == "F32":
        return struct.pack(f"<{len(values)}f", *values)
    if dtype == "F64":
        return struct.pack(f"<{len(values)}d", *values)
    if dtype == "F16":
        return struct.pack(f"<{len(values)}H", *[f16_bits(x) for x in values])
    return struct.pack(f"<{len(values)}H", *[bf16_bits(x) for x in values])  # BF16


def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, values)."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        raw = encode(dtype, values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - (len(h) + 8) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def safetensors_seeds(rng):
    model = [(n, s, [round(rng.uniform(-1, 1), 3) for _ in range(numel(s))])
             for n, s in llama_tensors(TINY_CONFIG)]
    out("safetensors", "tiny-llama-f32", safetensors([(n, "F32", s, v) for n, s, v in model],
                                                     {"format": "pt"}))
    out("safetensors", "tiny-llama-16bit",
        safetensors([(n, "BF16" if len(s) == 2 else "F16", s, v) for n, s, v in model]))
    out("safetensors", "dtypes", safetensors([
        ("a", "F16", [4], [1.0, -2.5, 65504.0, 2.0 ** -24]), ("b", "BF16", [3], [1.0, -2.5, 3e38]),
        ("c", "F64", [2, 1], [1e300, -0.0]), ("d", "F32", [0], []), ("e", "F32", [2, 0, 3], []),
        ("f", "F32", [], [7.0])], {"format": "pt", "note": "every dtype"}))
    good = safetensors([("x", "F32", [2], [1.0, 2.0])])
    out("safetensors", "truncated", good[:-3])
    out("safetensors", "header-too-long", struct.pack("<Q", 1 << 40) + good[8:])
    hdr = b'{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},' \
          b'"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    out("safetensors", "overlap", struct.pack("<Q", len(hdr)) + hdr + b"\0" * 8)
    hdr = b'{"x":{"dtype":"I8","shape":[2],"data_offsets":[0,2]}}'
    out("safetensors", "bad-dtype", struct.pack("<Q", len(hdr)) + hdr + b"\0" * 2)


# ---- GGUF -----------------------------------------------------------------------------------

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
GT = {"F32": (0, 1, 4), "F16": (1, 1, 2), "Q4_0": (2, 32, 18), "Q4_1": (3, 32, 20),
      "Q5_0": (6, 32, 22), "Q5_1": (7, 32, 24), "Q8_0": (8, 32, 34), "Q4_K": (12, 256, 144),
      "Q6_K": (14, 256, 210), "BF16": (30, 1, 2)}
SCALES = {"Q4_0": [0], "Q4_1": [0, 2], "Q5_0": [0], "Q5_1": [0, 2], "Q8_0": [0], "Q4_K": [0, 2],
          "Q6_K": [208]}  # byte offsets of each block's f16 scales


def gguf_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


SCALAR_FMT = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
              U64: "Q", I64: "q", F64: "d"}


def gguf_value(t, v, elem=None):
    if t == STRING:
        return gguf_str(v)
    if t == ARRAY:
        b = struct.pack("<IQ", elem, len(v))
        return b + b"".join(gguf_value(elem, x) for x in v)
    return struct.pack("<" + SCALAR_FMT[t], v)


def tensor_bytes(rng, type_name, n):
    _, bs, bb = GT[type_name]
    if type_name == "F32":
        return struct.pack(f"<{n}f", *[rng.uniform(-1, 1) for _ in range(n)])
    if type_name in ("F16", "BF16"):
        return encode(type_name, [rng.uniform(-1, 1) for _ in range(n)])
    blocks = []
    for _ in range(n // bs):
        b = bytearray(rng.getrandbits(8) for _ in range(bb))
        for off in SCALES[type_name]:  # finite scales; random bytes could be inf/NaN
            b[off:off + 2] = struct.pack("<H", f16_bits(rng.uniform(-0.1, 0.1)))
        blocks.append(bytes(b))
    return b"".join(blocks)


def gguf(rng, kv, tensors, version=3):
    """kv: (key, type, value[, elem]); tensors: (name, ne, type name)."""
    b = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for item in kv:
        b += gguf_str(item[0]) + struct.pack("<I", item[1]) + gguf_value(item[1], item[2], *item[3:])
    offset, datas = 0, []
    for name, ne, tn in tensors:
        data = tensor_bytes(rng, tn, numel(ne))
        b += gguf_str(name) + struct.pack("<I", len(ne)) + struct.pack(f"<{len(ne)}Q", *ne)
        b += struct.pack("<IQ", GT[tn][0], offset)
        datas.append(data + b"\0" * ((32 - len(data) % 32) % 32))
        offset += len(datas[-1])
    b += b"\0" * ((32 - len(b) % 32) % 32)
    return b + b"".join(datas)


def byte_chars():
    """GPT-2's byte -> printable character map (as text/bpe.cpp's make_byte_map)."""
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def tiny_vocab():
    m = byte_chars()
    toks = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    toks += [m[b] for b in b" \n\t.,!?'0123456789"] + [m[b] for b in b"abcdefghijklmnopqrstuvwxyzHIT"]
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n"), ("e", "r"), ("\u0120", "a")]
    toks += [a + b for a, b in merges]
    types = [3, 3, 3] + [1] * (len(toks) - 3)
    return toks, [f"{a} {b}" for a, b in merges], types


def gguf_model(rng, arch="llama", pre="smollm", tied=True, types=None):
    d, layers, heads, kv_heads, ff = 32, 1, 4, 2, 32
    toks, merges, ttypes = tiny_vocab()
    v = len(toks)
    a = arch + "."
    kv = [("general.architecture", STRING, arch), ("general.alignment", U32, 32),
          (a + "embedding_length", U32, d), (a + "block_count", U32, layers),
          (a + "attention.head_count", U32, heads), (a + "attention.head_count_kv", U32, kv_heads),
          (a + "feed_forward_length", U32, ff), (a + "context_length", U32, 64),
          (a + "attention.layer_norm_rms_epsilon", F32, 1e-5), (a + "rope.freq_base", F32, 10000.0),
          ("tokenizer.ggml.model", STRING, "gpt2"), ("tokenizer.ggml.pre", STRING, pre),
          ("tokenizer.ggml.tokens", ARRAY, toks, STRING),
          ("tokenizer.ggml.token_type", ARRAY, ttypes, I32),
          ("tokenizer.ggml.merges", ARRAY, merges, STRING),
          ("tokenizer.ggml.bos_token_id", U32, 1), ("tokenizer.ggml.eos_token_id", U32, 2),
          ("tokenizer.ggml.add_bos_token", BOOL, False)]
    if arch == "llama":
        kv.append((a + "rope.scaling.type", STRING, "linear"))
        kv.append((a + "rope.scaling.factor", F32, 2.0))
    ty = types or {}
    q, kvd = heads * (d // heads), kv_heads * (d // heads)
    t = [("token_embd.weight", [d, v], ty.get("embd", "Q8_0"))]
    for l in range(layers):
        p = f"blk.{l}."
        t += [(p + "attn_norm.weight", [d], "F32"), (p + "attn_q.weight", [d, q], ty.get("q", "Q4_0")),
              (p + "attn_k.weight", [d, kvd], ty.get("k", "Q4_1")),
              (p + "attn_v.weight", [d, kvd], ty.get("v", "Q5_0")),
              (p + "attn_output.weight", [q, d], ty.get("o", "Q5_1")),
              (p + "ffn_norm.weight", [d], "F32"), (p + "ffn_gate.weight", [d, ff], ty.get("gate", "F16")),
              (p + "ffn_up.weight", [d, ff], ty.get("up", "BF16")),
              (p + "ffn_down.weight", [ff, d], ty.get("down", "F32"))]
        if arch == "qwen2":
            t += [(p + "attn_q.bias", [q], "F32"), (p + "attn_k.bias", [kvd], "F32"),
                  (p + "attn_v.bias", [kvd], "F32")]
    t.append(("output_norm.weight", [d], "F32"))
    if not tied:
        t.append(("output.weight", [d, v], "Q8_0"))
    return gguf(rng, kv, t)


def gguf_seeds(rng):
    smollm = gguf_model(rng)
    out("gguf", "llama-smollm-vocab", smollm)
    out("gguf", "llama-untied-llama-bpe", gguf_model(rng, pre="llama-bpe", tied=False,
                                                     types={"q": "F32", "k": "F16", "v": "Q8_0"}))
    out("gguf", "qwen2-bias", gguf_model(rng, arch="qwen2", pre="qwen2"))
    out("gguf", "every-quant-type", gguf(rng, [("general.architecture", STRING, "llama")], [
        (tn.lower(), [GT[tn][1] if GT[tn][1] > 1 else 8, 2], tn) for tn in GT]))
    out("gguf", "v2-every-metadata-type", gguf(rng, [
        ("u8", U8, 200), ("i8", I8, -5), ("u16", U16, 60000), ("i16", I16, -300), ("u32", U32, 7),
        ("i32", I32, -7), ("f32", F32, 0.5), ("bool", BOOL, True), ("str", STRING, "caf\u00e9"),
        ("u64", U64, 1 << 40), ("i64", I64, -(1 << 40)), ("f64", F64, 2.5),
        ("arr_i16", ARRAY, [1, -2, 3], I16), ("arr_str", ARRAY, ["a", "", "b c"], STRING),
        ("arr_empty", ARRAY, [], U8)], [], version=2))
    out("gguf", "truncated-in-metadata", smollm[:200])
    out("gguf", "truncated-in-data", smollm[:-100])
    out("gguf", "huge-counts", b"GGUF" + struct.pack("<IQQ", 3, 1 << 60, 1 << 60) + b"\0" * 16)
    bad_align = gguf(rng, [("general.alignment", U32, 24)], [("x", [4], "F32")])
    out("gguf", "bad-alignment", bad_align)


# ---- tokenizer.json -------------------------------------------------------------------------

def tokenizer_json_seeds():
    for name in ["gpt2", "llama3", "qwen2", "smollm"]:
        with open(os.path.join(FIXTURES, "tokenizers", name, "tokenizer.json"), encoding="utf-8") as f:
            j = json.load(f)
        keep = 320
        vocab = {t: i for t, i in j["model"]["vocab"].items() if i < keep}
        merges = []
        for m in j["model"]["merges"]:
            a, b = m.split(" ", 1) if isinstance(m, str) else m
            if a in vocab and b in vocab and a + b in vocab:
                merges.append(m)
        j["model"]["vocab"] = vocab
        j["model"]["merges"] = merges
        j["added_tokens"] = [t for t in j["added_tokens"] if t["id"] < keep]
        if any(i >= keep for i in _ids(j.get("post_processor"))):
            j["post_processor"] = None  # its ids must stay inside the cut vocabulary
        out("tokenizer_json", name, json.dumps(j, ensure_ascii=False, indent=1))
    tiny = {"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "\u0120": 2, "ab": 4},
                      "merges": [["a", "b"]]},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "added_tokens": [{"id": 3, "content": "<x>", "special": True, "lstrip": True,
                              "rstrip": True}]}
    out("tokenizer_json", "tiny-with-text", json.dumps(tiny).encode() + b"\0ab <x>  ba\xff a<x>b")
    out("tokenizer_json", "not-bpe", json.dumps({"model": {"type": "Unigram", "vocab": []}}))


def _ids(x):
    if isinstance(x, dict):
        for k, v in x.items():
            if k == "ids" and isinstance(v, list):
                yield from (i for i in v if isinstance(i, int))
            else:
                yield from _ids(v)
    elif isinstance(x, list):
        for v in x:
            yield from _ids(v)


# ---- SentencePiece --------------------------------------------------------------------------

def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def put_varint(v):
    o = b""
    while True:
        c = v & 0x7F
        v >>= 7
        if v:
            o += bytes([c | 0x80])
        else:
            return o + bytes([c])


def fields(b):
    """[(field, wire type, raw bytes of the whole field)] of a protobuf message."""
    i, res = 0, []
    while i < len(b):
        start = i
        k, i = varint(b, i)
        f, w = k >> 3, k & 7
        if w == 0:
            _, i = varint(b, i)
        elif w == 1:
            i += 8
        elif w == 2:
            n, i = varint(b, i)
            i += n
        elif w == 5:
            i += 4
        else:
            raise ValueError("wire type %d" % w)
        res.append((f, w, b[start:i]))
    return res


def payload(raw):
    _, i = varint(raw, 0)
    n, i = varint(raw, i)
    return raw[i:i + n]


def ld(field, data):
    return put_varint(field << 3 | 2) + put_varint(len(data)) + data


def sentencepiece_seeds():
    with open(os.path.join(FIXTURES, "tokenizers", "sp", "tokenizer.model"), "rb") as f:
        model = f.read()
    pieces, trainer, normalizer, rest = [], b"", b"", b""
    for f, w, raw in fields(model):
        if f == 1:
            pieces.append(raw)
        elif f == 2:
            trainer = payload(raw)
        elif f == 3:
            normalizer = payload(raw)
        elif f != 4:  # drop the self-test data: it no longer holds once pieces are cut
            rest += raw
    kept, normal = [], 0
    for raw in pieces:
        ptype = 1
        for f, w, r in fields(payload(raw)):
            if f == 3:
                ptype, _ = varint(r, 1)
        if ptype == 1:
            normal += 1
            if normal > 120:
                continue
        kept.append(raw)
    # identity normaliser: the fixture's 237 kB nmt_nfkc charsmap would dwarf the corpus
    norm = ld(1, b"identity") + b"".join(r for f, w, r in fields(normalizer) if f not in (1, 2))
    for type_name, model_type in [("bpe", 2), ("unigram", 1), ("char", 3), ("word", 4)]:
        tr = b"".join(r for f, w, r in fields(trainer) if f != 3) + put_varint(3 << 3) + put_varint(model_type)
        out("sentencepiece", type_name, b"".join(kept) + ld(2, tr) + ld(3, norm) + rest)
    out("sentencepiece", "no-pieces", ld(2, trainer) + ld(3, norm))


# ---- config.json ----------------------------------------------------------------------------

def config_seeds():
    for name in ["llama_gqa", "qwen2_bias", "smollm_tied"]:
        with open(os.path.join(FIXTURES, name, "model", "config.json")) as f:
            out("config", name, f.read())
    with open(os.path.join(FIXTURES, "eval_model", "config.json")) as f:
        out("config", "eval_model", f.read())
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
            "intermediate_size": 128, "vocab_size": 100}
    out("config", "mistral-sliding", json.dumps(dict(base, architectures=["MistralForCausalLM"],
                                                     sliding_window=32, num_key_value_heads=2)))
    out("config", "model-type-only", json.dumps(dict(base, model_type="qwen2", use_sliding_window=False,
                                                     rope_scaling={"type": "linear", "factor": 2})))
    out("config", "llama3-rope", json.dumps(dict(base, architectures=["LlamaForCausalLM"], rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192}, bos_token_id=[1, 2], eos_token_id=3)))
    out("config", "huge-dims", json.dumps(dict(base, architectures=["LlamaForCausalLM"],
                                               num_hidden_layers=10 ** 12)))


# ---- JSONL data -----------------------------------------------------------------------------

def jsonl_seeds():
    out("jsonl", "input-ids", '{"input_ids": [1, 2, 3, 4]}\n\n{"input_ids": [5, 2999, 0]}\n')
    out("jsonl", "text", '{"text": "Hello world, it\'s 42!"}\n{"text": "caf\\u00e9 \\ud83e\\udd99 <|im_end|>"}\n')
    out("jsonl", "prompt-completion", '{"prompt": "Q: 2+2?\\nA:", "completion": " 4"}\n'
                                      '{"prompt": "", "completion": "x"}\n')
    out("jsonl", "mixed-forms", '{"text": "a b"}\n{"input_ids": [1, 2]}\n')
    for path in sorted(glob.glob(os.path.join(ROOT, "tests", "data", "*.jsonl"))):
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()[:2]
        out("jsonl", os.path.basename(path)[:-len(".jsonl")], "".join(lines))


def main():
    rng = random.Random(13)
    for d in glob.glob(os.path.join(CORPUS, "*", "seed-*")):
        os.remove(d)
    safetensors_seeds(rng)
    gguf_seeds(rng)
    tokenizer_json_seeds()
    sentencepiece_seeds()
    config_seeds()
    jsonl_seeds()
    total = 0
    for d in sorted(os.listdir(CORPUS)):
        files = glob.glob(os.path.join(CORPUS, d, "*"))
        size = sum(os.path.getsize(f) for f in files)
        total += size
        print(f"{d:16s} {len(files):3d} files {size / 1024:8.1f} KiB")
    print(f"{'total':16s}           {total / 1024:8.1f} KiB")


if __name__ == "__main__":
    main()
