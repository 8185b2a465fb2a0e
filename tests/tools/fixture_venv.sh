#!/usr/bin/env bash
# Prints the python of the fixture venv (Debian's python3-torch, pip's transformers==4.45.2, in a
# venv that sees the system packages), creating it first when it is missing. Used by the scripts
# that regenerate committed fixtures; CI never runs them. LOMO_FIXTURE_VENV overrides the place.
set -euo pipefail
venv=${LOMO_FIXTURE_VENV:-/opt/lomo-fixtures-venv}
if [[ ! -x $venv/bin/python ]]; then
  apt-get install -y -qq python3-torch python3-venv >&2
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q "transformers==4.45.2" >&2
fi
echo "$venv/bin/python"
