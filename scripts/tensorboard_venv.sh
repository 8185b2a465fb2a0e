#!/usr/bin/env bash
# The Python that reads `lomo train --log-dir` event files back in the tests
# (tests/tools/check_tensorboard.py): a virtual environment holding PyPI's `tensorboard`, in the
# local cache beside the default model, ${LOMO_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lomo}/
# tensorboard-venv (Debian 12's pip refuses to install into the system Python). Idempotent: a
# venv whose reader imports is left alone. Prints the path of its python.
#   --print   print the path if the venv is ready, exit 1 if not; installs nothing
set -euo pipefail
# The event reader needs numpy, protobuf and absl-py besides tensorboard itself; its server's
# dependencies (grpcio, werkzeug, markdown, ...) are not installed.
pkgs=(tensorboard==2.21.0 protobuf==6.33.6 numpy==2.3.5 absl-py==2.3.1)
home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
cache=${LOMO_CACHE:-${XDG_CACHE_HOME:-$home/.cache}/lomo}
venv=$cache/tensorboard-venv
stamp=$venv/lomo-packages.txt
ready() {
  [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "${pkgs[*]}" ]] &&
    "$venv/bin/python" -c "from tensorboard.backend.event_processing import event_accumulator" \
      2> /dev/null
}
if ready; then
  echo "$venv/bin/python"
  exit 0
fi
if [[ ${1:-} == --print ]]; then
  echo "tensorboard_venv: no venv with ${pkgs[*]} at $venv (run scripts/tensorboard_venv.sh)" >&2
  exit 1
fi
echo "tensorboard_venv: installing ${pkgs[*]} into $venv" >&2
rm -rf "$venv"
mkdir -p "$cache"
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
  "${pkgs[@]}" >&2
echo "${pkgs[*]}" > "$stamp"
if ! ready; then
  echo "tensorboard_venv: the tensorboard event reader does not import in $venv" >&2
  exit 1
fi
echo "$venv/bin/python"
