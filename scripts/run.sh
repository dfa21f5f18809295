#!/usr/bin/env bash
# The main job for a newcomer: install what is needed (scripts/setup.sh), then train EfficientNet-B0
# from scratch on Fashion-MNIST (10 classes, 32x32) on the best GPU wgpu finds. Extra arguments go
# to the training example (see `cargo run --release --example train_b0 -- --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo run --locked --release --example train_b0 -- "$@"
