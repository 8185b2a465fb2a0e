#!/usr/bin/env bash
# README command 2: set up, build, run every test; then the whole suite again under ASan + UBSan
# (scripts/asan_test.sh, build-asan/) and every fuzz target over its corpus plus 5 s of fuzzing
# each (scripts/fuzz.sh --replay, build-fuzz/). See docs/reliability.md, "Untrusted input".
set -euo pipefail
cd "$(dirname "$0")/.."
# Each stage's wall time, printed as it ends and again at the end (where CI's minutes go).
times=()
stage() {
  local name=$1 start=$SECONDS
  shift
  "$@"
  times+=("$(printf '%-8s %4d s' "$name" $((SECONDS - start)))")
  echo "== test.sh: $name took $((SECONDS - start)) s"
}
trap 'printf "== test.sh stage times:\n"; printf "   %s\n" "${times[@]}"' EXIT
stage setup scripts/setup.sh
scripts/fetch_model.sh > /dev/null
scripts/tensorboard_venv.sh > /dev/null
stage build scripts/build.sh
# ctest runs nproc tests at once, each with nproc OpenMP threads: with the default (spinning)
# wait policy the oversubscribed threads burn the cores their peers wait for, and the tiny
# models' many short parallel regions run several times slower (a planner sweep: 25.8 s
# spinning against 14.2 s passive, 2026-12-01). Passive waiting changes no result.
export OMP_WAIT_POLICY=passive
stage ctest bash -c 'cd build && ctest --output-on-failure -j "$(nproc)"'
stage asan scripts/asan_test.sh
stage fuzz scripts/fuzz.sh --replay 5
