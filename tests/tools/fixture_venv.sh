#!/usr/bin/env bash
# Prints the python of the fixture venv (Debian's python3-torch, pip's transformers==4.45.2 and
# peft==0.13.2, in a venv that sees the system packages), creating it first when it is missing and
# adding peft to an existing one that lacks it. Used by the scripts that regenerate committed
# fixtures; CI never runs them. LOMO_FIXTURE_VENV overrides the place.
#
# peft and accelerate go in with --no-deps: Debian's torch reports itself as 1.13.0a0, which pip
# reads as older than peft's "torch>=1.13.0", so resolving dependencies would pull torch 2.x from
# PyPI into the venv. Their other requirements (numpy, packaging, psutil, pyyaml, tqdm,
# safetensors, huggingface_hub) are already there with transformers. accelerate 0.34.2 is the last
# release that accepts torch < 2.
set -euo pipefail
venv=${LOMO_FIXTURE_VENV:-/opt/lomo-fixtures-venv}
if [[ ! -x $venv/bin/python ]]; then
  apt-get install -y -qq python3-torch python3-venv >&2
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q "transformers==4.45.2" >&2
fi
if ! "$venv/bin/python" -c "import peft" 2>/dev/null; then
  "$venv/bin/pip" install -q --no-deps "accelerate==0.34.2" "peft==0.13.2" >&2
fi
echo "$venv/bin/python"
