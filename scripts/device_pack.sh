#!/usr/bin/env bash
# Prepares a GPU check for a machine lent by the `device` tool (same x86-64, no package registry,
# a tree of at most 64 MiB): builds the release binaries here, strips and compresses them into the
# ignored .devbin/, with Debian's Vulkan loader in .gl/ and the probe from ../shared/device. Then,
# from the device tool: run `bash scripts/device_run.sh` with carry [".devbin", ".gl"].
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
mkdir -p .devbin .gl
cargo build --release --locked --bin effnet --example bench --example train_b0 --example f16_agreement
kernels=$(cargo test --release --locked --test kernels --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "kernels":
        print(m["executable"])' | tail -1)
for b in target/release/effnet target/release/examples/bench target/release/examples/train_b0 \
         target/release/examples/f16_agreement "$kernels"; do
  name=$(basename "$b" | sed 's/-[0-9a-f]*$//')
  strip -o ".devbin/$name" "$b"
  xz -9 -f ".devbin/$name"
done
# burn's baseline (baselines/burn), for the same side-by-side on the GPU.
if CARGO_TARGET_DIR=target/burn-baseline cargo build --release --quiet --manifest-path baselines/burn/Cargo.toml; then
  strip -o .devbin/burn-baseline target/burn-baseline/release/burn-baseline && xz -9 -f .devbin/burn-baseline
else
  echo "device_pack: burn's baseline did not build; device_run.sh runs without it"
fi
cp baselines/pytorch.py .devbin/baselines.py
cp ../shared/device/probe-vulkan.sh .devbin/ 2>/dev/null || echo "device_pack: no ../shared/device/probe-vulkan.sh"
# The Vulkan loader: the device machine has the NVIDIA driver's ICD but maybe no libvulkan.so.1.
# NVIDIA's Vulkan ICD (libGLX_nvidia) also needs the glvnd libraries.
(cd .gl && apt-get download libvulkan1 libglvnd0 libglx0 libgl1 libegl1 libgles2 libopengl0 >/dev/null 2>&1 ||
  echo "device_pack: apt-get download failed")
du -sh .devbin .gl
