#!/usr/bin/env bash
# The whole test suite again, built with GCC's AddressSanitizer and UndefinedBehaviorSanitizer
# into build-asan/ (docs/reliability.md, "Untrusted input"). Every report fails the run: UBSan
# halts on its first (-fno-sanitize-recover=all), ASan on every error, LeakSanitizer at exit
# (scripts/lsan.supp: the third-party leaks it ignores, and why). Run by scripts/test.sh after
# the normal build's tests; needs nothing beyond scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each still runs in the normal build (build/).
excluded=(
  # Compares the planner with the process's RSS, which the sanitizers' shadow memory and
  # quarantine inflate by design.
  MemoryPlan.PredictionMatchesTheProcessRss
  Memory.TheBinaryStartsWithoutTheGpuLibraries
  # 528 small training steps (9 s normally) took 349 s under the sanitizers on 2026-11-30, the
  # whole suite's long pole; the code paths it walks are the ones the other tests run here.
  MemoryPlan.PredictionEqualsTrackedPeaksForEveryConfiguration
  # Its LoRA twin (288 steps, 4.5 s normally), for the same reason; the LoRA reference, resume
  # and command-line tests run here.
  MemoryPlan.PredictionEqualsTrackedPeaksWithLora
  # The fused attention's finite-difference cases at head_dim 64-crossing shapes (GQA 4:2, 9:3):
  # 80 s and 50 s under the sanitizers (2026-12-01); the kernel's other tests (against a naive
  # fp64 attention, NaN-filled outputs, thread counts) and the smaller FD cases run here.
  FiniteDifferences.AttentionAcrossBlocksWithGqa42
  FiniteDifferences.AttentionAcrossBlocksWithGqa93
)

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
# -g1: line tables only, enough for file:line in every report, and a faster build than -g.
# Without the CUDA backend: nvcc's host code is not instrumented anyway, and the normal build
# compiles it; this also keeps a CPU-only configuration (-DLOMO_CUDA=OFF) building and passing.
# Without MPI too: OpenMPI's own allocations at MPI_Init are leaks to LeakSanitizer, and the
# normal build runs the mpirun tests; this keeps a build without MPI (one process) passing.
# A unity build (CMake joins up to 8 sources per translation unit): the headers (GoogleTest,
# nlohmann/json, the standard library) are parsed once per group instead of once per file; on
# 2026-12-01 the build took about 3 min instead of 9 on CI's two cores. Sources must therefore not
# define the same name in their anonymous namespaces (tests name their own where they would).
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOMO_CUDA=OFF -DLOMO_MPI=OFF \
  -DCMAKE_UNITY_BUILD=ON \
  -DCMAKE_CXX_FLAGS="$san" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -march=native" \
  -DCMAKE_EXE_LINKER_FLAGS="$san" -DCMAKE_SHARED_LINKER_FLAGS="$san" > /dev/null
cmake --build build-asan -j "$(nproc)" --target lomo lomo_tests

export OMP_WAIT_POLICY=passive  # as scripts/test.sh: nproc tests at once, nproc threads each
export ASAN_OPTIONS="detect_leaks=1"
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
pattern=$(IFS='|'; echo "^(${excluded[*]})\$")
cd build-asan && ctest --output-on-failure -j "$(nproc)" -E "$pattern"
