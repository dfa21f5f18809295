#!/usr/bin/env bash
# Start-up times: the first Lite0 classification, the first B0 `effnet run` and the first
# training step of train_b0, each with empty shader caches (fresh Mesa and pipeline-cache folders)
# and then again with the caches the first run left. Prints a Markdown table
# (examples/startup.rs). Arguments go to it, e.g. --runs 3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}
cargo build --locked --release --bins --examples
target/release/examples/startup "$@"
