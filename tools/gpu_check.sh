#!/usr/bin/env bash
# One check of a machine with one NVIDIA GPU and no internet (README "Checking a GPU machine"):
#   tools/gpu_check.sh [--wheels DIR] [--budget SECONDS]
# --wheels DIR: wheels made by tools/fetch_gpu_wheels.sh, installed into a temporary folder on
# PYTHONPATH (the machine's own python3 and torch stay as they are). $PYTHON picks the interpreter.
set -u
cd "$(dirname "$0")/.." || exit 1
PYTHON=${PYTHON:-python3}
args=()
wheels=
while [ $# -gt 0 ]; do
    case "$1" in
        --wheels) [ $# -ge 2 ] || { echo "gpu_check.sh: --wheels needs a folder" >&2; exit 2; }
                  wheels=$2; shift 2 ;;
        *) args+=("$1"); shift ;;
    esac
done
if [ -n "$wheels" ]; then
    shopt -s nullglob
    files=("$wheels"/*.whl)
    [ ${#files[@]} -gt 0 ] || { echo "gpu_check.sh: $wheels: no .whl files" >&2; exit 2; }
    target=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check-wheels.XXXXXX")
    trap 'rm -rf "$target"' EXIT
    PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1 \
        "$PYTHON" -m pip install -q --no-index --no-deps --target "$target" "${files[@]}" ||
        { echo "gpu_check.sh: $wheels: pip could not install the wheels" >&2; exit 1; }
    export PYTHONPATH="$target${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" tools/gpu_check.py "${args[@]}"
