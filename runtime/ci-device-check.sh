#!/usr/bin/env bash
# Check that the runtime builds for microcontrollers with `core` only (no `alloc`, no `std`):
# thumbv7em-none-eabihf (Cortex-M4F/M7), thumbv6m-none-eabi (Cortex-M0/M0+),
# thumbv8m.main-none-eabihf (Cortex-M33), riscv32imac-unknown-none-elf and
# riscv32imc-unknown-none-elf (RISC-V without atomic instructions, the ESP32-C3 class: no
# dependency may need atomic read-modify-write).
# Prints "OK <target>" per target; exits non-zero if any build fails.
#
# Toolchain, in order of preference:
#  1. a rustc that ships its library source (rustup's `rust-src` component, or Debian's
#     `rustc-web` + `rust-web-src` at /usr/bin): core is rebuilt for the target with
#     `-Z build-std=core` (RUSTC_BOOTSTRAP=1 lets a stable compiler take the flag). Only `core`
#     exists in that sysroot, so any dependency that pulls `alloc` or `std` fails the build;
#  2. rustup's prebuilt targets (`rustup target add` each target above), which builds the same
#     code but cannot prove the absence of `alloc`.
# Offline: the build is tried with --offline first (works from a warm cargo cache, shared
# through CARGO_HOME), then online.
set -euo pipefail
cd "$(dirname "$0")"
targets=(thumbv7em-none-eabihf thumbv6m-none-eabi thumbv8m.main-none-eabihf
    riscv32imac-unknown-none-elf riscv32imc-unknown-none-elf)
export CARGO_HOME="${CARGO_HOME:-$HOME/.cargo}"
target_dir="${DEVICE_TARGET_DIR:-$(pwd)/../target/device-check}"

has_src() { [ -f "$1/lib/rustlib/src/rust/library/core/src/lib.rs" ]; }

mode=""
if command -v rustc >/dev/null && has_src "$(rustc --print sysroot)"; then
    mode=build-std
    cargo_bin=cargo
    rustc_bin=$(command -v rustc)
elif [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && has_src "$(/usr/bin/rustc --print sysroot)"; then
    mode=build-std
    cargo_bin=/usr/bin/cargo
    rustc_bin=/usr/bin/rustc
elif command -v rustup >/dev/null; then
    mode=prebuilt
    cargo_bin=cargo
    rustc_bin=$(command -v rustc)
else
    echo "no usable toolchain: install rustup's rust-src component, Debian's rustc-web and" >&2
    echo "rust-web-src, or rustup targets for ${targets[*]}" >&2
    exit 2
fi
echo "toolchain: $("$rustc_bin" --version) ($mode)" >&2

build() {
    local target=$1
    shift
    local args=(build --release --lib --target "$target" --target-dir "$target_dir" "$@")
    "$cargo_bin" "${args[@]}" --offline || "$cargo_bin" "${args[@]}"
}

status=0
# Default features, and the opt-in device features (persistence, signed blobs, the extra layer
# kinds, the Cortex-M convolution kernels).
# The minimal runtime (dense, ReLU, tanh, MSE, SGD: the sine firmware's), and every feature a
# device can use.
for features in minimal "persist,sign,conv-kernels"; do
for t in "${targets[@]}"; do
    ok=1
    fargs=(--no-default-features)
    [ "$features" != minimal ] && fargs=(--features "$features")
    case $mode in
        build-std)
            RUSTC="$rustc_bin" RUSTC_BOOTSTRAP=1 build "$t" -Z build-std=core "${fargs[@]}" || ok=0
            ;;
        prebuilt)
            if rustup target list --installed | grep -qx "$t"; then
                build "$t" "${fargs[@]}" || ok=0
            else
                echo "$t: not installed (rustup target add $t)" >&2
                ok=0
            fi
            ;;
    esac
    if [ "$ok" = 1 ]; then
        echo "OK $t ($mode) features: $features"
    else
        echo "FAILED $t ($mode) features: $features"
        status=1
    fi
done
done
exit "$status"
