#!/bin/sh
# Builds the C firmware (make: main.c and board.c with arm-none-eabi-gcc, linked with the anole
# C API's static library that cargo builds for thumbv7em-none-eabihf) and runs it in QEMU
# mps2-an386 under -icount shift=0, then checks it against the Rust firmware (qemu-cortex-m4):
# the same loss_before= / loss_after= lines, bit for bit, and instructions per adaptation step,
# per prediction and per multiply-accumulate within 1%. It also builds the firmware through the
# CMake snippet (anole.cmake, with CMakeLists.txt) and checks that it prints the same losses. Prints both
# firmwares' figures and the C firmware's RAM and flash; exits non-zero on any failure.
#
#   bash firmware-examples/c-cortex-m4/run.sh [RUST_FIRMWARE_OUTPUT]
#
# RUST_FIRMWARE_OUTPUT: the Rust firmware's output from an earlier run (firmware-examples/run.sh
# passes its own); without it, the Rust firmware is built and run here. Needs
# gcc-arm-none-eabi, qemu-system-arm, make and cmake, and a Rust toolchain with the target or
# Debian's rustc-web, cargo-web and rust-web-src (see ../xcargo); missing Debian packages are
# installed with apt-get.
set -eu
rust=""
if [ $# -gt 0 ]; then
    case "$1" in
    /*) rust=$1 ;;
    *) rust="$(pwd)/$1" ;;
    esac
    [ -f "$rust" ] || { echo "c-cortex-m4: no such file: $1" >&2; exit 1; }
fi
cd "$(dirname "$0")"
here=$(pwd)
out=../target/c-cortex-m4
mkdir -p "$out"
die() {
    printf 'c-cortex-m4: FAILED: %s\n' "$*" >&2
    exit 1
}

pkgs=""
for tool in arm-none-eabi-gcc:gcc-arm-none-eabi qemu-system-arm:qemu-system-arm make:make cmake:cmake; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || pkgs="$pkgs ${tool#*:}"
done
if [ -n "$pkgs" ]; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "c-cortex-m4: installing$pkgs" >&2
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    $sudo apt-get install -y --no-install-recommends $pkgs >&2 ||
        { $sudo apt-get update >&2 && $sudo apt-get install -y --no-install-recommends $pkgs >&2; } ||
        die "cannot install$pkgs"
fi

run_fw() { # elf output-file
    status=0
    ../qemu-cortex-m4/qemu-run.sh "$1" >"$2" 2>&1 || status=$?
    [ "$status" = 0 ] || { cat "$2" >&2; die "$1 exited with $status under QEMU"; }
}
value() { sed -n "s/^$2=//p" "$1" | head -n 1; }

echo "== build (make)" >&2
make -s all >&2 || die "make"
run_fw "$out/anole-c.elf" "$out/c.txt"
cat "$out/c.txt"

echo "== build (cmake, anole.cmake)" >&2
cmake -S . -B "$out-cmake" -DANOLE_CARGO="$here/../xcargo" -DANOLE_TARGET_DIR="$here/../target" >&2 ||
    die "cmake configure"
cmake --build "$out-cmake" >&2 || die "cmake build"
run_fw "$out-cmake/anole-c.elf" "$out/cmake.txt"

if [ -z "$rust" ]; then
    echo "== build and run the Rust firmware (qemu-cortex-m4)" >&2
    (cd ../qemu-cortex-m4 && ../xcargo build --release >&2) || die "build the Rust firmware"
    rust="$out/rust.txt"
    run_fw ../target/thumbv7em-none-eabihf/release/anole-qemu-cortex-m4 "$rust"
fi

# The same f32: the C firmware prints the shortest decimal that reads back as it, the Rust
# firmware nine significant digits (without core's float formatting); both read back exactly.
same_f32() {
    python3 -c 'import struct, sys
f32 = lambda s: struct.pack("<f", float(s))
sys.exit(f32(sys.argv[1]) != f32(sys.argv[2]))' "$1" "$2"
}
for key in loss_before loss_after; do
    c=$(value "$out/c.txt" $key)
    m=$(value "$out/cmake.txt" $key)
    r=$(value "$rust" $key)
    [ -n "$c" ] && [ -n "$r" ] && same_f32 "$c" "$r" ||
        die "$key: the C firmware prints '$c', the Rust firmware '$r' (not the same f32)"
    [ "$m" = "$c" ] || die "$key: the CMake build prints '$m', the make build '$c'"
done
within() { # key percent: the C count within percent of the Rust count
    c=$(value "$out/c.txt" "$1")
    r=$(value "$rust" "$1")
    [ -n "$c" ] && [ -n "$r" ] || die "$1 missing (C '$c', Rust '$r')"
    awk -v c="$c" -v r="$r" -v p="$2" 'BEGIN { d = (c - r) / r * 100; if (d < 0) d = -d; exit !(d <= p) }' ||
        die "$1: C $c, Rust $r: more than $2% apart"
}
within per_step 1
within per_prediction 1
within per_mac 1

# Berkeley sizes: flash = text + data, static RAM = data + bss.
read -r flash ram <<EOF
$(arm-none-eabi-size "$out/anole-c.elf" | awk 'NR == 2 { print $1 + $2, $2 + $3 }')
EOF
stack=$(value "$out/c.txt" peak_stack)
echo "same losses as the Rust firmware, bit for bit (make and CMake builds)"
for key in per_step per_prediction per_mac; do
    c=$(value "$out/c.txt" $key)
    r=$(value "$rust" $key)
    echo "$key: C $c, Rust $r ($(awk -v c="$c" -v r="$r" 'BEGIN { printf "%+.2f%%", (c - r) / r * 100 }'))"
done
echo "c_flash=$flash"
echo "c_static_ram=$ram"
echo "c_peak_stack=$stack"
echo "c_ram_used=$((ram + stack))"
