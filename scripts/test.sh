#!/usr/bin/env bash
# Installs what the tests need (scripts/setup.sh), then runs every test on whatever GPU wgpu finds
# (lavapipe on machines without one). PyTorch parity fixtures: tests/fixtures, and the full-size
# ones in $EFFNET_FIXTURES (default ../shared/fixtures).
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET_NO_DATA=${EFFNET_NO_DATA:-1} source scripts/setup.sh
# lavapipe's window-system layer warns when this is unset; compute needs no display.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo test --locked "$@"
