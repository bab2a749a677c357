#!/usr/bin/env bash
# Set up autospace on a fresh machine; meant to be sourced by the other scripts.
# - installs torch==2.13.0 (the CPU build) when no torch is importable; a bare
#   `pip install torch` would pull a multi-GB CUDA build
# - installs the package (editable) with its dev extras
# - points AUTOSPACE_DATA at the shared CIFAR-10 copy when it sits beside the repo
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! "$python" -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  "$python" -m pip install -q "torch==2.13.0"
fi
if ! "$python" -c "import autospace, pytest, xdist, hypothesis, yaml, tqdm, matplotlib, PIL, onnx, onnxruntime, tensorboard" >/dev/null 2>&1 \
   || [ "$("$python" -c 'import autospace, os; print(os.path.dirname(os.path.dirname(autospace.__file__)))' 2>/dev/null)" != "$repo" ]; then
  echo "setup: installing autospace (editable) with dev extras"
  "$python" -m pip install -q -e "$repo[dev]"
fi
if [ -z "${AUTOSPACE_DATA:-}" ] && [ -f "$repo/../shared/data/cifar10_jpeg.npz" ]; then
  export AUTOSPACE_DATA="$(cd "$repo/../shared/data" && pwd)"
fi
export AUTOSPACE_DATA="${AUTOSPACE_DATA:-$HOME/.cache/autospace/data}"
echo "setup: ready (python: $("$python" --version 2>&1), data: $AUTOSPACE_DATA)"
