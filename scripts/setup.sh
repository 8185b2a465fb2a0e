#!/usr/bin/env bash
# Installs what lomo needs to build and test, from Debian only. Idempotent. Packages named as
# arguments are installed too (scripts/fuzz.sh: clang and libFuzzer).
set -euo pipefail
pkgs=(build-essential cmake libdnnl-dev nlohmann-json3-dev libgtest-dev libicu-dev
  libsentencepiece-dev python3 "$@")
# TensorBoard event files: protobuf (library and protoc) and ISA-L's CRC-32C; python3-venv for
# the tensorboard reader the tests use (scripts/tensorboard_venv.sh).
pkgs+=(libprotobuf-dev protobuf-compiler libisal-dev python3-venv)
# Several ranks (mpirun -np N lomo train --parallel dp): OpenMPI, its library and launcher.
pkgs+=(libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [[ $(id -u) -eq 0 ]] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
