#!/usr/bin/env bash
# libFuzzer targets for every reader of untrusted input (fuzz/, docs/reliability.md "Untrusted
# input"), built with clang, AddressSanitizer and UndefinedBehaviorSanitizer into build-fuzz/.
#
#   scripts/fuzz.sh --replay [SECONDS]        (CI, from scripts/test.sh) every target over its
#                                             checked-in corpus, then SECONDS (default 20, at
#                                             most 60) of fuzzing each; fails on any finding
#   scripts/fuzz.sh --run SECONDS [TARGET...] long runs, one target after another, from a work
#                                             corpus in build-fuzz/work/ that grows across runs;
#                                             prints executions, cov and ft, and appends them
#                                             to build-fuzz/runs.tsv
#   scripts/fuzz.sh --build                   build only
#
# Targets: safetensors gguf tokenizer_json sentencepiece config jsonl chat_template. A finding leaves the input
# in build-fuzz/artifacts/; once fixed, copy it to fuzz/corpus/<target>/regress-<what> so that
# every replay checks it again.
set -euo pipefail
cd "$(dirname "$0")/.."

all_targets=(safetensors gguf tokenizer_json sentencepiece config jsonl chat_template)
# -timeout: one input that takes longer is a finding (a hang or quadratic blow-up);
# -rss_limit_mb / -malloc_limit_mb: so is a process or one allocation above 2 GiB (the inputs
# are a few kB; the readers must not allocate beyond what the file implies).
common=(-timeout=25 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1)
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:symbolize=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

build() {
  scripts/setup.sh clang libclang-rt-14-dev
  cmake -S fuzz -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    > /dev/null
  cmake --build build-fuzz -j "$(nproc)"
  mkdir -p build-fuzz/artifacts
}

check_target() {
  local t
  for t in "${all_targets[@]}"; do [[ $t == "$1" ]] && return 0; done
  echo "fuzz.sh: unknown target \"$1\" (${all_targets[*]})" >&2
  exit 2
}

replay() {
  local seconds=$1 t new
  ((seconds <= 60)) || { echo "fuzz.sh: --replay fuzzes at most 60 s a target" >&2; exit 2; }
  for t in "${all_targets[@]}"; do
    echo "fuzz: $t: replaying $(ls fuzz/corpus/$t | wc -l) corpus inputs"
    build-fuzz/fuzz_$t "${common[@]}" -artifact_prefix=build-fuzz/artifacts/$t- \
      fuzz/corpus/$t/* > build-fuzz/replay-$t.log 2>&1 || { cat build-fuzz/replay-$t.log; exit 1; }
    if ((seconds > 0)); then
      # New inputs go to a scratch folder: CI never changes the checked-in corpus.
      new=$(mktemp -d)
      build-fuzz/fuzz_$t "${common[@]}" -max_total_time="$seconds" \
        -artifact_prefix=build-fuzz/artifacts/$t- "$new" fuzz/corpus/$t \
        > build-fuzz/fuzz-$t.log 2>&1 || { tail -n 60 build-fuzz/fuzz-$t.log; rm -rf "$new"; exit 1; }
      rm -rf "$new"
      echo "fuzz: $t: ${seconds} s, $(summary build-fuzz/fuzz-$t.log)"
    fi
  done
}

# "N executions, cov C, ft F, corpus K" from a libFuzzer log.
summary() {
  local execs line
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$1" | grep -o '[0-9]*$' || true)
  line=$(grep -E '^#[0-9]+' "$1" | grep 'cov:' | tail -n 1 || true)
  echo "${execs:-?} executions, cov $(sed -E 's/.*cov: ([0-9]+).*/\1/' <<< "$line"), ft" \
    "$(sed -E 's/.*ft: ([0-9]+).*/\1/' <<< "$line"), corpus" \
    "$(sed -E 's/.*corp: ([0-9]+).*/\1/' <<< "$line")"
}

run() {
  local seconds=$1 t work log start
  shift
  local targets=("$@")
  ((${#targets[@]})) || targets=("${all_targets[@]}")
  for t in "${targets[@]}"; do check_target "$t"; done
  for t in "${targets[@]}"; do
    work=build-fuzz/work/$t
    mkdir -p "$work"
    log=build-fuzz/run-$t-$(date -u +%Y%m%dT%H%M%S).log
    start=$(date -u +%Y-%m-%dT%H:%MZ)
    echo "fuzz: $t: ${seconds} s, log $log"
    local rc=0
    build-fuzz/fuzz_$t "${common[@]}" -max_total_time="$seconds" \
      -artifact_prefix=build-fuzz/artifacts/$t- "$work" fuzz/corpus/$t > "$log" 2>&1 || rc=$?
    local s
    s=$(summary "$log")
    printf '%s\t%s\t%s s\t%s\texit %s\n' "$start" "$t" "$seconds" "$s" "$rc" >> build-fuzz/runs.tsv
    echo "fuzz: $t: $s, exit $rc"
    if ((rc != 0)); then
      tail -n 60 "$log"
      exit 1
    fi
  done
}

case "${1:-}" in
  --build)
    build
    ;;
  --replay)
    build
    replay "${2:-20}"
    ;;
  --run)
    [[ ${2:-} =~ ^[0-9]+$ ]] || { echo "usage: scripts/fuzz.sh --run SECONDS [TARGET...]" >&2; exit 2; }
    build
    seconds=$2
    shift 2
    run "$seconds" "$@"
    ;;
  *)
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
