#!/usr/bin/env bash
# Installs what the tests need (scripts/setup.sh), then runs every test binary on whatever GPU
# wgpu finds (lavapipe on machines without one), going on past a failing binary so that one
# failure does not hide the rest. Arguments go to cargo test (before `--`) and to the test
# harness (after it).
#
# The PyTorch parity fixtures in tests/fixtures are always used. Tests of the full-size fixtures
# kept outside the repository are marked ignored (cargo lists each with its reason); they run
# when the folder $EFFNET_FIXTURES (default ../shared/fixtures) exists, as it does in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
EFFNET_TESTS=1 EFFNET_NO_DATA=${EFFNET_NO_DATA:-1} source scripts/setup.sh
# lavapipe's window-system layer warns when this is unset; compute needs no display.
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}

fixtures=${EFFNET_FIXTURES:-../shared/fixtures}
harness=()
if [ -d "$fixtures/torchvision-b0" ]; then
  export EFFNET_FIXTURES="$fixtures"
  harness=(--include-ignored)
  echo "test.sh: full-size fixtures found in $fixtures: running the tests that need them too"
else
  echo "test.sh: no full-size fixtures in $fixtures: the tests that need them are listed as ignored"
fi

# Split the caller's arguments at `--`: cargo's, then the harness's.
cargo_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do cargo_args+=("$1"); shift; done
[ $# -gt 0 ] && shift
cargo test --locked --no-fail-fast "${cargo_args[@]}" -- "${harness[@]}" "$@"
