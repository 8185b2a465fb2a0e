#!/usr/bin/env bash
# Regenerates tests/fixtures/generate/greedy.json (committed; CI never runs this), in the same venv
# as make_fixtures.sh: Debian's python3-torch and pip's transformers==4.45.2.
set -euo pipefail
cd "$(dirname "$0")"
venv=${LOMO_FIXTURE_VENV:-/opt/lomo-fixtures-venv}
if [[ ! -x $venv/bin/python ]]; then
  apt-get install -y -qq python3-torch python3-venv
  /usr/bin/python3 -m venv --system-site-packages "$venv"
  "$venv/bin/pip" install -q "transformers==4.45.2"
fi
"$venv/bin/python" make_generate_fixtures.py
