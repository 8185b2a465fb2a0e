#!/usr/bin/env bash
# Configures and builds lomo into build/ (Release, warnings as errors).
set -euo pipefail
cd "$(dirname "$0")/.."
# With nvcc here the CUDA backend is built too (docs/cuda.md), and its cuDNN attention when
# cudnn-frontend's pinned headers are in the cache.
if command -v nvcc > /dev/null || [[ -x /usr/local/cuda/bin/nvcc ]]; then
  scripts/fetch_cudnn_frontend.sh > /dev/null
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$(nproc)"
