#!/usr/bin/env bash
# Puts NVIDIA's cudnn-frontend C++ headers (header-only, MIT) into the local cache:
# ${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}/cudnn-frontend/include, where CMake looks
# for them (LOMO_CUDNN_FRONTEND_DIR); without them the CUDA backend builds its hand-written
# attention alone. They come from PyPI's nvidia-cudnn-frontend 1.32.0, whose wheel carries the
# headers under include/. The wheel is pinned by name and SHA-256: pip is asked for the CPython
# 3.11 manylinux x86_64 build whatever the local Python is, so the hash holds on every machine
# (the headers are the same in every build of a version). Idempotent: a cache stamped with this
# SHA-256 is left alone. Prints the include directory. Fetched code is never committed.
set -euo pipefail
version=1.32.0
wheel=nvidia_cudnn_frontend-$version-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
sha=c6006556017a4d1c914c52a556c71b1267f2d6a0500f742e7b4edef539878df0
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${LOMO_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/lomo}
dest=$cache/cudnn-frontend
stamp=$dest/wheel.sha256
if [[ -f $stamp && $(cat "$stamp") == "$sha" && -f $dest/include/cudnn_frontend.h ]]; then
  echo "$dest/include"
  exit 0
fi
fail() { echo "fetch_cudnn_frontend: $*" >&2; exit 1; }
if ! python3 -m pip --version > /dev/null 2>&1; then
  fail "needs pip (python3 -m pip); install python3-pip"
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetch_cudnn_frontend: downloading nvidia-cudnn-frontend==$version from PyPI (12 MB)" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --implementation cp --python-version 3.11 \
  --abi cp311 --platform manylinux_2_28_x86_64 -d "$tmp" "nvidia-cudnn-frontend==$version" >&2 ||
  fail "pip download of nvidia-cudnn-frontend==$version failed (network, or PyPI lacks it)"
[[ -f $tmp/$wheel ]] || fail "pip did not fetch $wheel (got: $(ls "$tmp"))"
echo "$sha  $tmp/$wheel" | sha256sum --quiet -c - > /dev/null 2>&1 ||
  fail "$wheel does not have the expected SHA-256 $sha (got $(sha256sum "$tmp/$wheel" | cut -d' ' -f1))"
python3 - "$tmp/$wheel" "$tmp/out" <<'PY'
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    headers = [n for n in z.namelist() if n.startswith("include/") and not n.endswith("/")]
    if "include/cudnn_frontend.h" not in headers:
        sys.exit(f"fetch_cudnn_frontend: {wheel} has no include/cudnn_frontend.h")
    for n in headers:
        z.extract(n, out)
PY
mkdir -p "$dest"
rm -rf "$dest/include" "$stamp"
mv "$tmp/out/include" "$dest/include"
echo "$sha" > "$stamp"
echo "$dest/include"
