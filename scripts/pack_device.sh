#!/usr/bin/env bash
# Builds what scripts/device_check.sh runs on a lent GPU machine and packs it into
# .device-pack/ (git-ignored; name it in the device tool's `carry`). The GPU machine has the CUDA
# toolkit, CMake and Python with torch and transformers, but not oneDNN, ICU, SentencePiece or
# GoogleTest, so the binaries travel from here with the shared libraries they need (compressed:
# at most 64 MiB travel with a run). CUDA's runtime is linked statically; cuBLASLt and NVRTC are
# not linked but opened on first use, from the GPU machine's own CUDA 13. Also packs the peer's lomo-optim wheel (not installed there).
#   usage: scripts/pack_device.sh            (build-device/: sm_90 only, Release)
set -euo pipefail
cd "$(dirname "$0")/.."
# Without MPI: the GPU machine has no OpenMPI, and the device check runs one process.
cmake -S . -B build-device -DCMAKE_BUILD_TYPE=Release -DLOMO_CUDA=ON -DLOMO_MPI=OFF \
  -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null
cmake --build build-device -j "$(nproc)" --target lomo lomo_cuda_tests lomo_tests
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/lomo-device/bin" "$stage/lomo-device/lib"
cp build-device/lomo build-device/tests/lomo_cuda_tests build-device/tests/lomo_tests \
  "$stage/lomo-device/bin/"
# Every shared library the binaries load, except the C runtime's own and CUDA's (the GPU machine
# has its own driver and CUDA 13 libraries, which must match it).
for bin in "$stage"/lomo-device/bin/*; do
  ldd "$bin" | awk '/=> \//{print $3}'
done | sort -u | while read -r lib; do
  case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|libpthread.so*|librt.so*|ld-linux*|libstdc++.so*|libgcc_s.so*) ;;
    libcuda.so*|libcublas*|libcudnn*|libnccl*|libcudart*) ;;
    *) cp -L "$lib" "$stage/lomo-device/lib/" ;;
  esac
done
git rev-parse HEAD > "$stage/lomo-device/COMMIT"
mkdir -p .device-pack
tar -C "$stage" -cJf .device-pack/lomo-device.tar.xz lomo-device
# The peer's optimizer (pure Python).
python3 -m pip download -q --no-deps --only-binary=:all: -d .device-pack lomo-optim==0.1.1
ls -la .device-pack
du -sh .device-pack
