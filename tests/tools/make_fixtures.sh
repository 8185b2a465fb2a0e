#!/usr/bin/env bash
# Regenerates tests/fixtures/ (committed; CI never runs this) in the fixture venv
# (fixture_venv.sh: Debian's python3-torch and pip's transformers).
set -euo pipefail
cd "$(dirname "$0")"
python=$(./fixture_venv.sh)
"$python" make_fixtures.py
