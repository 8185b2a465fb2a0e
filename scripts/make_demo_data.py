#!/usr/bin/env python3
"""Generates the demo's training data (JSONL of token ids), standard library only.

Each sequence counts upward from a random start with a random stride, modulo the vocabulary:
a rule a randomly initialised model does not know and learns within a few hundred steps, so
the loss visibly falls.

usage: make_demo_data.py OUT.jsonl [--lines N] [--vocab V] [--seed S]
"""
import argparse
import json
import random

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--lines", type=int, default=512)
ap.add_argument("--vocab", type=int, default=512)
ap.add_argument("--min-len", type=int, default=24)
ap.add_argument("--max-len", type=int, default=96)
ap.add_argument("--seed", type=int, default=0)
args = ap.parse_args()
rng = random.Random(args.seed)
with open(args.out, "w") as f:
    for _ in range(args.lines):
        start, stride = rng.randrange(args.vocab), rng.randrange(1, 8)
        length = rng.randrange(args.min_len, args.max_len + 1)
        f.write(json.dumps({"input_ids": [(start + stride * k) % args.vocab for k in range(length)]}) + "\n")
