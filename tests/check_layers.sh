#!/usr/bin/env bash
# The architecture, checked (docs/architecture.md): folders depend only downwards,
#   core ← ops ← model ← optim ← train ← cli,   io, text, data, dist beside them,
# only ops/ may include a backend's own folder (ops/cpu/, later ops/cuda/), and OpenMP (pragmas,
# omp.h, omp_* calls) lives in ops/cpu/ alone. Prints every violation and fails if there is one.
#   usage: tests/check_layers.sh [SOURCE_DIR]   (default: the repository root)
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$root/src" || exit 2
declare -A allowed=(
  [core]="core"
  [ops]="core ops"
  [io]="core io"
  [text]="core io text"
  [data]="core io text model data"
  [model]="core io text ops model"
  [optim]="core ops model optim"
  [dist]="core ops model dist"
  [train]="core io text data ops model optim dist train"
  [cli]="core io text data ops model optim dist train cli"
)
bad=0
for dir in "${!allowed[@]}"; do
  [[ -d $dir ]] || continue
  while IFS=: read -r file line inc; do
    target=${inc#*\"}
    top=${target%%/*}
    [[ $target == */* ]] || continue
    if [[ " ${allowed[$dir]} " != *" $top "* ]]; then
      echo "$file:$line: $dir/ may not include $target (allowed: ${allowed[$dir]})"
      bad=1
    fi
    if [[ $target == ops/*/* && $dir != ops ]]; then
      echo "$file:$line: $dir/ includes a backend's own header $target (use ops/backend.h)"
      bad=1
    fi
  done < <(grep -rnoE '#include "[^"]+"' "$dir" --include='*.h' --include='*.cpp' --include='*.cu')
done
# Folders the map does not know are a violation too: a new folder must be placed in the picture.
for dir in */; do
  dir=${dir%/}
  if [[ -z ${allowed[$dir]+x} ]]; then
    echo "src/$dir: a folder the layer map does not know (add it to tests/check_layers.sh and docs/architecture.md)"
    bad=1
  fi
done
while IFS= read -r hit; do
  echo "$hit: OpenMP outside ops/cpu/"
  bad=1
done < <(grep -rnE '#pragma omp|#include <omp\.h>|\bomp_[a-z_]+\(' . --include='*.h' --include='*.cpp' |
  grep -v '^\./ops/cpu/')
if ((bad)); then
  echo "layer check: FAILED"
  exit 1
fi
echo "layer check: every include points down the layers; OpenMP only in ops/cpu/"
