#!/usr/bin/env bash
# Runs the PyTorch baselines (baselines/pytorch.py) in a venv of their own, made on first use
# (CPU wheels unless a CUDA GPU is present). Arguments go to pytorch.py.
set -euo pipefail
VENV="${BASELINE_VENV:-$HOME/.cache/efficientnet-wgpu/baseline-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  command -v python3 >/dev/null || { echo "baselines: needs python3 (apt-get install -y python3 python3-venv)"; exit 1; }
  python3 -m venv "$VENV"
  if command -v nvidia-smi >/dev/null 2>&1; then
    "$VENV/bin/pip" install -q torch torchvision
  else
    # CPU wheels (small) where download.pytorch.org is reachable, else PyPI's default build.
    "$VENV/bin/pip" install -q --retries 1 --index-url https://download.pytorch.org/whl/cpu torch torchvision ||
      "$VENV/bin/pip" install -q torch torchvision
  fi
fi
exec "$VENV/bin/python" "$(dirname "$0")/pytorch.py" "$@"
