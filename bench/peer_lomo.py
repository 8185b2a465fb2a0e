"""The Python peer of `lomo train`: PyTorch + transformers + lomo-optim, as a user of the paper's
code would run it. Loads the same model folder (config.json + model.safetensors) and the same
input_ids lines as our run, trains with LOMO (`Lomo(model, lr)`, `fused_backward(loss, lr)` per
step) with gradient checkpointing, and prints one JSON object: per-step losses and seconds.

  usage: peer_lomo.py MODEL_DIR DATA_JSONL --dtype fp32|bf16 --steps N --batch-size B
                      --seq-len T --lr LR --threads K [--device cpu|cuda]

On a GPU (--device cuda) each step is timed between two torch.cuda.synchronize() calls, and the
peak GPU memory is reported as the paper measured it (torch.cuda.max_memory_reserved) and as
allocated.
"""
import argparse
import json
import resource
import sys
import time

import torch
import transformers
from lomo_optim import Lomo
from transformers import LlamaForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("data")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--steps", type=int, default=22)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    a = ap.parse_args()
    gpu = a.device == "cuda"
    torch.set_num_threads(a.threads)
    dtype = torch.float32 if a.dtype == "fp32" else torch.bfloat16
    rss_import = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=dtype)
    model.config.use_cache = False
    if gpu:
        model.to("cuda")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    opt = Lomo(model, lr=a.lr)
    lines = [json.loads(l)["input_ids"][: a.seq_len] for l in open(a.data)]
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    losses, seconds = [], []
    for step in range(a.steps):
        rows = [lines[(step * a.batch_size + i) % len(lines)] for i in range(a.batch_size)]
        ids = torch.tensor(rows, dtype=torch.long, device=a.device)
        if gpu:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        loss = model(input_ids=ids, labels=ids).loss
        opt.fused_backward(loss, a.lr)
        if gpu:
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        losses.append(float(loss))
        print(f"peer step {step + 1}/{a.steps} loss {losses[-1]:.4f} "
              f"tok/s {ids.numel() / seconds[-1]:.1f}", file=sys.stderr, flush=True)
    gpu_memory = {}
    if gpu:
        gpu_memory = {"device": torch.cuda.get_device_name(),
                      "max_memory_reserved": torch.cuda.max_memory_reserved(),
                      "max_memory_allocated": torch.cuda.max_memory_allocated()}
    print(json.dumps({
        **gpu_memory,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "attn_implementation": model.config._attn_implementation,
        "threads": torch.get_num_threads(), "dtype": a.dtype,
        "tokens_per_step": a.batch_size * a.seq_len, "losses": losses, "seconds": seconds,
        "rss_after_import": rss_import, "rss_after_load": rss_loaded,
    }))


if __name__ == "__main__":
    main()
