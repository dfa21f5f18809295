#!/usr/bin/env bash
# Runs burn's baseline (baselines/burn: EfficientNet-B0 on burn's wgpu backend) on this
# machine's adapter, built on first use into target/burn-baseline (needs crates.io the first time;
# ~15 minutes on 2 cores). Arguments go to the binary; one JSON object per measurement on stdout,
# to append to the file `bench --targets --baseline` reads:
#
#     bash baselines/pytorch.sh > base.jsonl && bash baselines/burn.sh >> base.jsonl
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EFFNET_NO_DATA=1 source "$ROOT/scripts/setup.sh" >&2
export CARGO_TARGET_DIR="$ROOT/target/burn-baseline" XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
cargo build --release --quiet --manifest-path "$ROOT/baselines/burn/Cargo.toml" >&2
exec "$CARGO_TARGET_DIR/release/burn-baseline" "$@"
