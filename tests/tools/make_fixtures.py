#!/usr/bin/env python3
"""Writes the reference fixtures the C++ tests compare against (design §7.1).

Independent reference: PyTorch + Hugging Face transformers. For each small random model it saves
the model folder (config.json + model.safetensors, fp32, written by save_pretrained) and a
reference.safetensors holding, computed in float64 from those same fp32 weights:

  input_ids, lengths         a right-padded batch of unequal lengths (B = 3)
  logits (B, T, V), loss     forward
  grad.<param>               every parameter gradient of the mean next-token loss
  <variant>.<param>          parameters after 3 steps on that batch, for the variants
                             sgd_plain, sgd_clipnorm, sgd_wd, sgd_clipvalue, adamw, and
                             adalomo / adalomo_clipnorm (AdaLomo written out below from its
                             definition in lomo-optim 0.1.1's adalomo.py, which itself only runs
                             on CUDA)

Float64 everywhere, so that what the C++ tests measure is our own fp32 error. transformers casts
softmax and RMSNorm to float32 internally; both are patched below to keep the input dtype. RoPE's
cos/sin stay computed in float32 as transformers does (the C++ side does the same).

Generated with: Debian python3-torch 1.13 (CPU) in a venv made with --system-site-packages,
plus pip transformers==4.45.2. Run: tests/tools/make_fixtures.sh
"""
import copy
import json
import os
import sys

import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from transformers.models.llama import modeling_llama
from transformers.models.qwen2 import modeling_qwen2

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

# --- keep float64 end to end -------------------------------------------------------------
_softmax = F.softmax


def _softmax_keep64(x, dim=None, _stacklevel=3, dtype=None):
    if x.dtype == torch.float64:
        dtype = None
    return _softmax(x, dim=dim, _stacklevel=_stacklevel, dtype=dtype)


torch.nn.functional.softmax = _softmax_keep64


def _rmsnorm_forward(self, hidden_states):
    variance = hidden_states.pow(2).mean(-1, keepdim=True)
    return self.weight * (hidden_states * torch.rsqrt(variance + self.variance_epsilon))


modeling_llama.LlamaRMSNorm.forward = _rmsnorm_forward
modeling_qwen2.Qwen2RMSNorm.forward = _rmsnorm_forward

# --- the models ----------------------------------------------------------------------------
MODELS = {
    # LLaMA-3 style: GQA (4 query heads over 2 kv heads), untied head, llama3 RoPE scaling.
    "llama_gqa": lambda: LlamaForCausalLM(LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=128, max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_theta=500000.0, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0,
                      "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
        attn_implementation="eager")),
    # SmolLM2 style: tied embeddings, 3:1 GQA, large rope_theta.
    "smollm_tied": lambda: LlamaForCausalLM(LlamaConfig(
        hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, vocab_size=96, max_position_embeddings=64, rms_norm_eps=1e-5,
        rope_theta=100000.0, tie_word_embeddings=True, attn_implementation="eager")),
    # Qwen2: q/k/v biases, linear RoPE scaling.
    "qwen2_bias": lambda: Qwen2ForCausalLM(Qwen2Config(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, vocab_size=112, max_position_embeddings=64, rms_norm_eps=1e-6,
        rope_theta=10000.0, tie_word_embeddings=False, use_sliding_window=False,
        rope_scaling={"type": "linear", "factor": 2.0}, attn_implementation="eager")),
}

LENGTHS = [9, 6, 4]
STEPS = 3
LR = 0.1
WD = 0.1
ADAM_LR = 1e-3


def randomize(model, gen):
    """Weights far from init symmetry, so every gradient is non-trivial."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith("bias"):
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif "embed_tokens" in name:
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(0.15 * torch.randn(p.shape, generator=gen))


def make_batch(vocab, gen):
    T = max(LENGTHS)
    ids = torch.zeros(len(LENGTHS), T, dtype=torch.long)
    mask = torch.zeros(len(LENGTHS), T, dtype=torch.long)
    for b, L in enumerate(LENGTHS):
        ids[b, :L] = torch.randint(0, vocab, (L,), generator=gen)
        mask[b, :L] = 1
    labels = ids.masked_fill(mask == 0, -100)
    return ids, mask, labels


def loss_and_logits(model, ids, mask, labels):
    # model.model + lm_head by hand: LlamaForCausalLM.forward casts logits to float32.
    hidden = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    logits = model.lm_head(hidden)
    V = logits.shape[-1]
    loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1),
                           ignore_index=-100)
    return loss, logits


def params_of(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


ADALOMO_LR = 1e-3
ADALOMO_WD = 0.01


def adalomo_update(params, grads, state, t, lr, wd, coef):
    """AdaLomo (Lv et al. 2023) as lomo-optim's fuse_update: Adafactor-style factored second
    moments with beta = 1 - t^-0.8 (t from 1), update normalised by max(1, RMS(u)), step
    scaled by max(1e-3, RMS(p)), decoupled weight decay."""
    beta = 1.0 - t ** -0.8
    with torch.no_grad():
        for n, p in params.items():
            g = grads[n] * coef
            upd = g * g + 1e-30
            if p.dim() > 1:
                r = state.setdefault(n + ".row", torch.zeros(p.shape[0], dtype=p.dtype))
                c = state.setdefault(n + ".col", torch.zeros(p.shape[1], dtype=p.dtype))
                r.mul_(beta).add_(upd.mean(dim=-1), alpha=1 - beta)
                c.mul_(beta).add_(upd.mean(dim=-2), alpha=1 - beta)
                u = (r / r.mean()).rsqrt().unsqueeze(-1) * c.rsqrt().unsqueeze(-2) * g
            else:
                v = state.setdefault(n + ".v", torch.zeros(p.shape[0], dtype=p.dtype))
                v.mul_(beta).add_(upd, alpha=1 - beta)
                u = v.rsqrt() * g
            u = u / torch.clamp(u.norm() / u.numel() ** 0.5, min=1.0)
            lr_eff = lr * max(1e-3, (p.norm() / p.numel() ** 0.5).item())
            if wd > 0:
                p.mul_(1 - lr_eff * wd)
            p.add_(u, alpha=-lr_eff)


def train(model64, ids, mask, labels, variant, clip_norm, clip_value):
    m = copy.deepcopy(model64)
    if variant.startswith("adalomo"):
        state = {}
        for t in range(1, STEPS + 1):
            m.zero_grad()
            loss, _ = loss_and_logits(m, ids, mask, labels)
            loss.backward()
            params = dict(m.named_parameters())
            grads = {n: p.grad.detach().clone() for n, p in params.items()}
            coef = 1.0
            if variant == "adalomo_clipnorm":
                norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values())).item()
                assert norm > clip_norm
                coef = min(1.0, clip_norm / (norm + 1e-6))
            adalomo_update(params, grads, state, t, ADALOMO_LR, ADALOMO_WD, coef)
        return params_of(m)
    if variant == "adamw":
        opt = torch.optim.AdamW(m.parameters(), lr=ADAM_LR, weight_decay=WD)
    else:
        opt = torch.optim.SGD(m.parameters(), lr=LR, weight_decay=WD if variant == "sgd_wd" else 0.0)
    for _ in range(STEPS):
        opt.zero_grad()
        loss, _ = loss_and_logits(m, ids, mask, labels)
        loss.backward()
        if variant == "sgd_clipnorm":
            norm = torch.nn.utils.clip_grad_norm_(m.parameters(), clip_norm)
            assert norm > clip_norm, "clipping must be active for the test to mean anything"
        if variant == "sgd_clipvalue":
            torch.nn.utils.clip_grad_value_(m.parameters(), clip_value)
        opt.step()
    return params_of(m)


def main():
    torch.manual_seed(0)
    for name, build in MODELS.items():
        gen = torch.Generator().manual_seed(1234)
        model = build().float()
        randomize(model, gen)
        folder = os.path.join(OUT, name)
        model.save_pretrained(os.path.join(folder, "model"), safe_serialization=True)

        model64 = copy.deepcopy(model).double()
        ids, mask, labels = make_batch(model.config.vocab_size, gen)
        loss, logits = loss_and_logits(model64, ids, mask, labels)
        loss.backward()
        grads = {n: p.grad.detach().clone() for n, p in model64.named_parameters()}
        model64.zero_grad()
        total_norm = torch.sqrt(sum((g ** 2).sum() for g in grads.values())).item()
        clip_norm = 0.1 * total_norm
        all_abs = torch.cat([g.abs().flatten() for g in grads.values()])
        clip_value = torch.quantile(all_abs, 0.9).item()  # clamps the largest 10 %

        ref = {
            "input_ids": ids.float(),
            "lengths": torch.tensor(LENGTHS, dtype=torch.float32),
            "logits": logits.detach().float(),
            "loss": loss.detach().float().reshape(1),
        }
        for n, g in grads.items():
            ref["grad." + n] = g.float()
        for variant in ["sgd_plain", "sgd_clipnorm", "sgd_wd", "sgd_clipvalue", "adamw", "adalomo",
                        "adalomo_clipnorm"]:
            for n, p in train(model64, ids, mask, labels, variant, clip_norm, clip_value).items():
                ref[variant + "." + n] = p.float()
        meta = {"steps": str(STEPS), "lr": repr(LR), "weight_decay": repr(WD),
                "adamw_lr": repr(ADAM_LR), "adalomo_lr": repr(ADALOMO_LR),
                "adalomo_weight_decay": repr(ADALOMO_WD), "clip_norm": repr(clip_norm),
                "clip_value": repr(clip_value), "grad_norm": repr(total_norm),
                "torch": torch.__version__, "transformers": transformers.__version__}
        save_file({k: v.contiguous() for k, v in ref.items()},
                  os.path.join(folder, "reference.safetensors"), metadata=meta)
        print(f"{name}: loss {loss.item():.6f}, grad norm {total_norm:.4f}, "
              f"{sum(p.numel() for p in model.parameters())} parameters", file=sys.stderr)


if __name__ == "__main__":
    main()
