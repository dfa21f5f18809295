#!/usr/bin/env bash
# The main job for a newcomer: install what is needed (scripts/setup.sh), then run the B0 forward
# benchmark on the best GPU wgpu finds. Extra arguments go to the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo run --locked --release --example bench -- --model b0 --batch 8 "$@"
