#!/usr/bin/env python3
"""Writes the LoRA reference fixtures the C++ tests compare against.

Independent reference: PyTorch + transformers + peft. For each fixture model of make_fixtures.py
(llama_gqa, smollm_tied, qwen2_bias; loaded from tests/fixtures/<name>/model, not regenerated) it
builds a PEFT LoRA model (r = 4, alpha = 8, no dropout, all seven linear projections of every layer,
init_lora_weights=False so that lora_B starts random, then every lora_B scaled by 0.1) and writes

  tests/fixtures/<name>/lora_init/   adapter_config.json + adapter_model.safetensors (fp32) as
                                     peft's save_pretrained writes them: the starting adapters
  tests/fixtures/<name>/lora_reference.safetensors, computed in float64 from those fp32 values:
    input_ids, lengths             the batch of reference.safetensors, copied (right padded)
    logits (B, T, V), loss (1)     forward of base + initial adapters (loss: mean next-token
                                   cross-entropy over the non-padded positions)
    grad.<adapter key>             gradients at the initial point, every parameter trainable;
    grad.<base name>               adapter keys as in adapter_model.safetensors, base names as in
                                   the model's named_parameters (tied lm_head folded into embed)
    <V>.loss (STEPS,)              loss at each step, before its update, for the variants V:
    <V>.<adapter key>              adapters after STEPS steps on the same batch
    <V>.<base name>                base parameters after STEPS steps (variants that train them)
      lora_only            base frozen; adapters AdamW(lr 1e-3, wd 0)
      lora_only_wd         base frozen; adapters AdamW(lr 1e-3, wd 0.1)
      lora_lomo            base SGD(lr 0.1) + adapters AdamW(lr 1e-3, wd 0) after one backward
      lora_lomo_clipnorm   as lora_lomo after clip_grad_norm_ over base + adapters with
                           max_norm = 0.1 x the initial gradient norm (clipping active each step)
      rslora_only          use_rslora=True (scaling alpha/sqrt(r)), same initial adapters,
                           as lora_only; plus rslora.logits, rslora.loss of the initial forward

Float64 everywhere through make_fixtures.py's patches of softmax and RMSNorm (imported from it).
Run: tests/tools/make_lora_fixtures.sh (fixture venv: Debian python3-torch 1.13, pip
transformers==4.45.2 and peft==0.13.2).
"""
import copy
import json
import os
import shutil
import sys

import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
from safetensors import safe_open
from safetensors.torch import load_file, save
from transformers import AutoModelForCausalLM

import make_fixtures  # noqa: F401  (its import patches softmax and RMSNorm to keep float64)
from make_fixtures import loss_and_logits

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
NAMES = ["llama_gqa", "smollm_tied", "qwen2_bias"]
R = 4
ALPHA = 8
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
B_SCALE = 0.1
SEED = 4321
STEPS = 3
ADAPTER_LR = 1e-3
ADAPTER_WD = 0.1  # lora_only_wd only
BASE_LR = 0.1
BETAS = (0.9, 0.999)
EPS = 1e-8

# save_pretrained also writes a README.md model card, which needs Jinja2 (not in the venv) and
# which the fixtures do not keep: skip it.
peft.PeftModel.create_or_update_model_card = lambda self, output_dir: None


def save_file_stable(tensors, path, metadata):
    """safetensors' save_file, but with the metadata in sorted order: safetensors writes it in
    hash-map order, which changes from run to run. The header keeps its length (same entries),
    so the data offsets stand."""
    blob = save(tensors, metadata=metadata)
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(blob[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(blob[:8] + text + b" " * (n - len(text)) + blob[8 + n:])


def load_base(rel):
    # A repo-relative path, so that adapter_config.json's base_model_name_or_path is one too (and
    # peft finds the config locally rather than asking the Hub).
    return AutoModelForCausalLM.from_pretrained(rel, torch_dtype=torch.float32,
                                                attn_implementation="eager")


def lora_model(rel, rslora):
    cfg = LoraConfig(r=R, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                     task_type="CAUSAL_LM", init_lora_weights=False, use_rslora=rslora)
    return get_peft_model(load_base(rel), cfg)


def split_names(pm):
    """{name in pm.named_parameters(): (kind, key)}: kind "adapter" with the key of
    adapter_model.safetensors, or "base" with the HF parameter name."""
    out = {}
    for n, _ in pm.named_parameters():
        assert n.startswith("base_model.model."), n
        if ".lora_A." in n or ".lora_B." in n:
            out[n] = ("adapter", n.replace(".default.", "."))
        else:
            out[n] = ("base", n[len("base_model.model."):].replace(".base_layer.", "."))
    return out


def batch_of(ref_path):
    with safe_open(ref_path, "pt") as f:
        ids_f, lengths_f = f.get_tensor("input_ids"), f.get_tensor("lengths")
        ref_logits, ref_loss = f.get_tensor("logits"), f.get_tensor("loss")
    ids = ids_f.long()
    lengths = lengths_f.long()
    mask = (torch.arange(ids.shape[1])[None, :] < lengths[:, None]).long()
    labels = ids.masked_fill(mask == 0, -100)
    return ids_f, lengths_f, ids, mask, labels, ref_logits, ref_loss


def hf_model(pm):
    return pm.base_model.model  # the transformers model with peft's LoRA layers in it


def train(pm64, names, ids, mask, labels, variant, clip_norm):
    m = copy.deepcopy(pm64)
    if m.config.tie_word_embeddings:  # one parameter for both, as in the state the C++ side loads
        assert hf_model(m).lm_head.weight is hf_model(m).model.embed_tokens.weight
    params = dict(m.named_parameters())
    adapters = [p for n, p in params.items() if names[n][0] == "adapter"]
    base = [p for n, p in params.items() if names[n][0] == "base"]
    train_base = variant.startswith("lora_lomo")
    for p in adapters:
        p.requires_grad_(True)
    for p in base:
        p.requires_grad_(train_base)
    wd = ADAPTER_WD if variant == "lora_only_wd" else 0.0
    opts = [torch.optim.AdamW(adapters, lr=ADAPTER_LR, betas=BETAS, eps=EPS, weight_decay=wd)]
    if train_base:
        opts.append(torch.optim.SGD(base, lr=BASE_LR, weight_decay=0.0))
    trainable = adapters + (base if train_base else [])
    losses = []
    for _ in range(STEPS):
        for o in opts:
            o.zero_grad()
        loss, _ = loss_and_logits(hf_model(m), ids, mask, labels)
        losses.append(loss.item())
        loss.backward()
        if variant == "lora_lomo_clipnorm":
            norm = torch.nn.utils.clip_grad_norm_(trainable, clip_norm).item()
            assert norm > clip_norm, "clipping must be active for the test to mean anything"
            print(f"    clipnorm step: grad norm {norm:.4f} > max_norm {clip_norm:.4f}",
                  file=sys.stderr)
        for o in opts:
            o.step()
    out = {variant + ".loss": torch.tensor(losses, dtype=torch.float64)}
    for n, p in m.named_parameters():
        kind, key = names[n]
        if kind == "adapter" or train_base:
            out[variant + "." + key] = p.detach().clone()
    return out


def scalings(pm):
    return {m.scaling["default"] for m in pm.modules() if hasattr(m, "scaling") and
            isinstance(getattr(m, "scaling"), dict) and "default" in m.scaling}


def one(name):
    rel = os.path.join("tests", "fixtures", name, "model")
    folder = os.path.join("tests", "fixtures", name)
    ids_f, lengths_f, ids, mask, labels, ref_logits, ref_loss = batch_of(
        os.path.join(folder, "reference.safetensors"))

    # base model alone, float64: the logits the B = 0 check must give back
    base64 = load_base(rel).double()
    with torch.no_grad():
        base_loss, base_logits = loss_and_logits(base64, ids, mask, labels)
    d_ref = (base_logits.float() - ref_logits).abs().max().item()
    print(f"{name}: base loss {base_loss.item():.6f} (reference.safetensors {ref_loss.item():.6f}), "
          f"worst logit difference to reference.safetensors {d_ref:.2e}", file=sys.stderr)
    assert d_ref < 1e-4

    # the PEFT model; lora_A and lora_B keep nn.Linear's default init (init_lora_weights=False)
    torch.manual_seed(SEED)
    pm = lora_model(rel, rslora=False)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if ".lora_B." in n:
                p.mul_(B_SCALE)
    assert scalings(pm) == {ALPHA / R}, scalings(pm)

    init_dir = os.path.join(folder, "lora_init")
    shutil.rmtree(init_dir, ignore_errors=True)
    pm.save_pretrained(init_dir)
    readme = os.path.join(init_dir, "README.md")
    if os.path.exists(readme):
        os.remove(readme)
    saved = load_file(os.path.join(init_dir, "adapter_model.safetensors"))
    print(f"  {init_dir}: {sorted(os.listdir(init_dir))}, {len(saved)} tensors", file=sys.stderr)
    for k in sorted(saved):
        print(f"    {k} {tuple(saved[k].shape)} {saved[k].dtype}", file=sys.stderr)

    names = split_names(pm)
    adapter_keys = {k for kind, k in names.values() if kind == "adapter"}
    assert adapter_keys == set(saved), (sorted(adapter_keys ^ set(saved)))[:8]
    base_names = {k for kind, k in names.values() if kind == "base"}
    assert base_names == {n for n, _ in base64.named_parameters()}, \
        sorted(base_names ^ {n for n, _ in base64.named_parameters()})[:8]
    for n, p in pm.named_parameters():
        kind, key = names[n]
        if kind == "adapter":
            assert torch.equal(p.detach(), saved[key]), key
            sh = tuple(p.shape)
            assert (sh[0] == R) if ".lora_A." in key else (sh[1] == R), (key, sh)

    pm64 = copy.deepcopy(pm).double()

    # sanity: with lora_B = 0 the PEFT forward is the base model's
    z = copy.deepcopy(pm64)
    with torch.no_grad():
        for n, p in z.named_parameters():
            if ".lora_B." in n:
                p.zero_()
        _, z_logits = loss_and_logits(hf_model(z), ids, mask, labels)
    d_zero = (z_logits - base_logits).abs().max().item()
    print(f"  B = 0 sanity: worst |PEFT logits - base logits| = {d_zero:.3e}", file=sys.stderr)
    assert d_zero < 1e-12, d_zero
    del z

    # forward and gradients at the initial point, every parameter trainable
    g_model = copy.deepcopy(pm64)
    for p in g_model.parameters():
        p.requires_grad_(True)
    loss, logits = loss_and_logits(hf_model(g_model), ids, mask, labels)
    loss.backward()
    d_lora = (logits.detach() - base_logits).abs().max().item()
    print(f"  LoRA loss {loss.item():.6f}, worst logit change from the adapters {d_lora:.3e}",
          file=sys.stderr)
    assert d_lora > 1e-3, "the adapters should move the logits measurably"
    ref = {"input_ids": ids_f, "lengths": lengths_f, "logits": logits.detach(),
           "loss": loss.detach().reshape(1)}
    grads = {}
    for n, p in g_model.named_parameters():
        grads[names[n][1]] = p.grad.detach().clone()
        ref["grad." + names[n][1]] = grads[names[n][1]]
    # chain rule through W + s B A: dA = s B^T dW, dB = s dW A^T (dW: the base weight's gradient)
    worst = 0.0
    for key in saved:
        if ".lora_A." not in key:
            continue
        kb = key.replace(".lora_A.", ".lora_B.")
        wname = key[len("base_model.model."):].replace(".lora_A.", ".")
        A, B, dW = saved[key].double(), saved[kb].double(), grads[wname]
        s = ALPHA / R
        for got, want in [(grads[key], s * B.t() @ dW), (grads[kb], s * dW @ A.t())]:
            worst = max(worst, ((got - want).abs().max() / want.abs().max()).item())
    print(f"  adapter gradients vs the chain rule from the base gradients: worst {worst:.2e}",
          file=sys.stderr)
    assert worst < 1e-12
    total_norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values())).item()
    clip_norm = 0.1 * total_norm
    del g_model

    for variant in ["lora_only", "lora_only_wd", "lora_lomo", "lora_lomo_clipnorm"]:
        out = train(pm64, names, ids, mask, labels, variant, clip_norm)
        print(f"  {variant}: losses {[round(x, 6) for x in out[variant + '.loss'].tolist()]}",
              file=sys.stderr)
        ref.update(out)

    # rsLoRA: a second PEFT model, the same initial adapters, scaling alpha / sqrt(r)
    rs = lora_model(rel, rslora=True)
    res = set_peft_model_state_dict(rs, saved)
    assert not [k for k in res.unexpected_keys], res.unexpected_keys
    assert not [k for k in res.missing_keys if "lora_" in k], res.missing_keys
    assert scalings(rs) == {ALPHA / R ** 0.5}, scalings(rs)
    for n, p in rs.named_parameters():
        kind, key = names[n]
        if kind == "adapter":
            assert torch.equal(p.detach(), saved[key]), key
    rs64 = rs.double()
    with torch.no_grad():
        rs_loss, rs_logits = loss_and_logits(hf_model(rs64), ids, mask, labels)
    ref["rslora.logits"] = rs_logits
    ref["rslora.loss"] = rs_loss.reshape(1)
    out = train(rs64, names, ids, mask, labels, "rslora_only", clip_norm)
    print(f"  rslora: initial loss {rs_loss.item():.6f}, losses "
          f"{[round(x, 6) for x in out['rslora_only.loss'].tolist()]}", file=sys.stderr)
    ref.update(out)

    meta = {"r": str(R), "alpha": str(ALPHA), "lora_scaling": repr(ALPHA / R),
            "rslora_scaling": repr(ALPHA / R ** 0.5), "lora_b_scale": repr(B_SCALE),
            "seed": str(SEED), "steps": str(STEPS), "adapter_lr": repr(ADAPTER_LR),
            "adapter_weight_decay_wd": repr(ADAPTER_WD), "base_lr": repr(BASE_LR),
            "adamw_betas": json.dumps(list(BETAS)), "adamw_eps": repr(EPS),
            "clip_norm": repr(clip_norm), "grad_norm": repr(total_norm),
            "target_modules": json.dumps(TARGETS), "torch": torch.__version__,
            "transformers": transformers.__version__, "peft": peft.__version__}
    path = os.path.join(folder, "lora_reference.safetensors")
    save_file_stable({k: v.float().contiguous() for k, v in ref.items()}, path, meta)
    print(f"  {path}: {len(ref)} tensors, {os.path.getsize(path)} bytes; grad norm {total_norm:.4f}",
          file=sys.stderr)


def main():
    os.chdir(ROOT)
    torch.manual_seed(0)
    for name in NAMES:
        one(name)


if __name__ == "__main__":
    main()
