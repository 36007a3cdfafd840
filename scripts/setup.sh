#!/usr/bin/env bash
# Installs what builds and tests need on a fresh Debian machine; a no-op when all is there.
# Debian's Rust (rustc-web, with its library source) builds the Arm and RISC-V targets offline
# with -Z build-std; the Arm and RISC-V GNU linkers and QEMU run the firmware; python's onnx
# and onnxruntime check the exported ONNX files.
set -euo pipefail

apt_pkgs=(rustc-web cargo-web rust-web-src gcc-arm-none-eabi binutils-arm-none-eabi
          binutils-riscv64-unknown-elf qemu-system-arm qemu-system-misc qemu-user
          gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  # Debian's qemu-system packages need the qemu-utils of their own release: a newer qemu-utils
  # (from backports) breaks qemu-system-common, so it is brought to the same release as them.
  pin=()
  if dpkg -s qemu-utils >/dev/null 2>&1; then
    want=$(apt-cache policy qemu-system-common | awk '/Candidate:/ {print $2}')
    have=$(dpkg-query -W -f='${Version}' qemu-utils)
    if [ -n "$want" ] && [ "$want" != "(none)" ] && [ "$want" != "$have" ]; then
      echo "setup: qemu-utils $have -> $want (the release of qemu-system)"
      pin=(--allow-downgrades "qemu-utils=$want")
    fi
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" "${pin[@]}" >/dev/null
fi

if ! python3 -c 'import onnx, onnxruntime, numpy' >/dev/null 2>&1; then
  echo "setup: installing python onnx, onnxruntime, numpy"
  python3 -m pip install -q --disable-pip-version-check onnx onnxruntime numpy
fi

# The exact second-order MAML reference of trainer/tests/maml_autograd.rs.
if ! python3 -c 'import autograd' >/dev/null 2>&1; then
  echo "setup: installing python autograd"
  python3 -m pip install -q --disable-pip-version-check autograd
fi
