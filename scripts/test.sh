#!/usr/bin/env bash
# README command 2: set up, build, run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/fetch_model.sh > /dev/null
scripts/build.sh
cd build && ctest --output-on-failure -j "$(nproc)"
