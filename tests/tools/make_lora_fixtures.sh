#!/usr/bin/env bash
# Regenerates the LoRA fixtures (tests/fixtures/<model>/lora_init/ and lora_reference.safetensors,
# committed; CI never runs this) in the fixture venv (fixture_venv.sh: Debian's python3-torch,
# pip's transformers and peft), from the model folders make_fixtures.sh wrote.
set -euo pipefail
cd "$(dirname "$0")"
python=$(./fixture_venv.sh)
# peft keeps target_modules as a set and writes it to adapter_config.json in set order: a fixed
# hash seed keeps that order, and so the file, the same from one run to the next.
PYTHONHASHSEED=0 "$python" make_lora_fixtures.py
