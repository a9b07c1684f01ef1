#!/usr/bin/env bash
# On a machine with internet: the wheels tools/gpu_check.sh needs on a GPU machine without it
# (python 3.12, x86-64 Linux), pinned as in requirements.txt. Copy DIR over, then run
#   tools/gpu_check.sh --wheels DIR
# Usage: tools/fetch_gpu_wheels.sh DIR [PACKAGE ...]   (default: trimesh scikit-image lazy-loader
# PyOpenGL tqdm; add scipy if that machine lacks it too)
set -u
cd "$(dirname "$0")/.." || exit 1
[ $# -ge 1 ] || { echo "usage: tools/fetch_gpu_wheels.sh DIR [PACKAGE ...]" >&2; exit 2; }
dest=$1; shift
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(trimesh scikit-image lazy-loader PyOpenGL tqdm)
mkdir -p "$dest" || exit 1
for name in "${packages[@]}"; do
    # The pin for Python 3.11 and later, where a marker gives Python 3.10 another.
    pin=$(grep -i "^$name==" requirements.txt | grep -v 'python_version < "3.11"' | sed 's/ *;.*//')
    [ -n "$pin" ] ||
        { echo "fetch_gpu_wheels.sh: requirements.txt: no pin for $name" >&2; exit 1; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$dest" "$pin" ||
        { echo "fetch_gpu_wheels.sh: $pin: no python 3.12 x86-64 Linux wheel" >&2; exit 1; }
done
ls "$dest"/*.whl
