#!/usr/bin/env bash
# Installs what efficientnet-wgpu needs on a fresh Debian/Ubuntu machine: a Rust toolchain (when
# cargo is missing), a Vulkan driver (lavapipe, Mesa's CPU Vulkan, when no GPU driver is installed)
# and the Fashion-MNIST data set. Safe to run again: it only installs what is missing.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
# A Vulkan driver: any ICD manifest means one is installed (NVIDIA, AMD, Intel or lavapipe).
if ! compgen -G "/usr/share/vulkan/icd.d/*.json" >/dev/null && ! compgen -G "/etc/vulkan/icd.d/*.json" >/dev/null; then
  need_apt+=(mesa-vulkan-drivers)
fi
if ! ldconfig -p 2>/dev/null | grep -q libvulkan.so.1; then need_apt+=(libvulkan1); fi
if [ "${EFFNET_NO_DATA:-0}" != 1 ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
  need_apt+=(dataset-fashion-mnist)
fi
if ! command -v cc >/dev/null 2>&1; then need_apt+=(gcc libc6-dev); fi
# OpenMPI and libclang (the mpi crate's bindings), for the `mpi` feature: EFFNET_MPI=1 (.ci/run).
if [ "${EFFNET_MPI:-0}" = 1 ]; then
  command -v mpirun >/dev/null 2>&1 || need_apt+=(openmpi-bin)
  [ -e /usr/lib/x86_64-linux-gnu/openmpi/include/mpi.h ] || compgen -G "/usr/lib/*/openmpi/include/mpi.h" >/dev/null || need_apt+=(libopenmpi-dev)
  command -v clang >/dev/null 2>&1 || need_apt+=(clang libclang-dev)
fi
# A virtual X display, for the desktop demo's headless test (tests/desktop.rs; test.sh sets
# EFFNET_TESTS=1).
if [ "${EFFNET_TESTS:-0}" = 1 ] && { ! command -v xvfb-run >/dev/null 2>&1 || ! command -v xauth >/dev/null 2>&1; }; then need_apt+=(xvfb xauth); fi
# A font for the text of the training plot (it is drawn without text where none is installed).
if [ "${EFFNET_NO_DATA:-0}" != 1 ] && ! ls /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf >/dev/null 2>&1; then
  need_apt+=(fonts-dejavu-core)
fi
if ! command -v cargo >/dev/null 2>&1 && ! [ -x "$HOME/.cargo/bin/cargo" ]; then need_apt+=(curl ca-certificates); fi

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "setup: installing Rust with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
fi
