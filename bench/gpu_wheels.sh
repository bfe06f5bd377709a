#!/usr/bin/env bash
# Wheels of what bench/gpu_checks.sh needs beyond a stock PyTorch image (torch, torchvision, numpy,
# Pillow, PyYAML, tqdm, regex, requests, huggingface_hub, safetensors, timm), at the versions `make
# install` put in .venv, for a GPU host without internet that runs another Python:
#
#   bash bench/gpu_wheels.sh [PYTHON_VERSION] [DIR]      (default 3.12 and .whl; about 9 MB)
#
# then on the host: python3 -m pip install --no-index --no-deps --target /tmp/site DIR/*.whl
#                   PYTHONPATH=/tmp/site bash bench/gpu_checks.sh
set -euo pipefail
version=${1:-3.12}
dir=${2:-.whl}
cd "$(dirname "$0")/.."
py=${VENV:-.venv}/bin/python
if [ ! -x "$py" ]; then
    echo "gpu_wheels: no $py: run make install first (the wheels take its versions)" >&2
    exit 2
fi
packages=(open_clip_torch ftfy wcwidth taming-transformers-rom1504 cog coglet structlog)
normalise() { tr '[:upper:]_' '[:lower:]-'; }
frozen=$("$py" -m pip freeze | normalise)
mkdir -p "$dir"
for package in "${packages[@]}"; do
    pin=$(grep -m1 "^$(echo "$package" | normalise)==" <<< "$frozen") || {
        echo "gpu_wheels: $package is not installed in ${VENV:-.venv}: run make install first" >&2
        exit 2
    }
    "$py" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$version" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$dir" "$pin"
done
ls "$dir"
