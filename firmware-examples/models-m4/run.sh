#!/bin/sh
# Builds and runs models-m4 for every case of make-blobs.py (or the cases named) and prints a
# markdown table (also written to ../target/models-m4/report.md): the reference models of
# embedded ML (DS-CNN, the IMU 1-D CNN, the autoencoder, ResNet-8) on the Cortex-M4F under QEMU
# mps2-an386 (-icount shift=0): instructions per inference and per SGD step (one sample),
# peak stack, static RAM, flash, and whether each fits a part with 256 KB of RAM and 1 MB of
# flash. Exits non-zero on any failure: a build or run that fails, a prediction or loss that is
# not finite, a loss that did not fall over the steps, losses other than the host runtime's
# (the same steps in the device layout, from make-blobs.py) bit for bit.
#
#   bash firmware-examples/models-m4/run.sh [CASE ...]
#
# Needs what firmware-examples/run.sh installs (qemu-system-arm, gcc-arm-none-eabi, a Rust
# toolchain with thumbv7em-none-eabihf or Debian's rustc-web) and Python with the anole
# package, torch, onnx and onnxruntime ($ANOLE_PYTHON, default python3; PYTHONPATH as set).
set -eu
cd "$(dirname "$0")"
here=$(pwd)
work="$here/../target/models-m4"
mkdir -p "$work"
die() {
    printf 'models-m4/run.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
say() { printf '\n== %s\n' "$*" >&2; }
py=${ANOLE_PYTHON:-python3}
elf=../target/thumbv7em-none-eabihf/release/anole-models-m4

say "blobs of the reference models (make-blobs.py)"
"$py" make-blobs.py "$work" "$@" >"$work/cases.txt" || die "make-blobs.py"
cat "$work/cases.txt" >&2

value() { sed -n "s/^$2=//p" "$1" | head -n 1; }
group() { echo "$1" | awk '{ s = $1; o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
kb() { # bytes -> "1,067.0 KB"
    tenths=$(awk -v b="$1" 'BEGIN { printf "%d", b / 102.4 + 0.5 }')
    echo "$(group $((tenths / 10))).$((tenths % 10)) KB"
}
per_mac() { awk -v c="$1" -v m="$2" 'BEGIN { if (m > 0) printf "%.1f", c / m; else printf "n/a" }'; }

rows="$work/rows.md"
: >"$rows"
while read -r case blob map adapt; do
    say "$case: build ($map map, adapting: $adapt)"
    mode=blob
    [ "$adapt" != none ] || mode=none
    (ANOLE_MODEL="$blob" ANOLE_MODEL_MAP="$map" ANOLE_MODEL_ADAPT="$mode" "$here/../xcargo" build --release >&2) ||
        die "$case: build"
    cp "$elf" "$work/$case.elf"
    say "$case: run in QEMU"
    status=0
    ./qemu-run.sh "$work/$case.elf" >"$work/$case.txt" 2>&1 || status=$?
    cat "$work/$case.txt" >&2
    [ "$status" = 0 ] || die "$case exited with $status under QEMU"
    out="$work/$case.txt"
    # The firmware's losses must be the host runtime's, bit for bit (one engine).
    if [ "$mode" = blob ]; then
        "$py" -c 'import sys, numpy as np
a, b = open(sys.argv[1]).read().split(), sys.argv[2].split()
sys.exit(not (len(a) == len(b) and all(np.float32(x) == np.float32(y) for x, y in zip(a, b))))' \
            "$work/$case.losses" "$(value "$out" losses)" ||
            die "$case: losses $(value "$out" losses) differ from the host's $(cat "$work/$case.losses")"
    fi
    # Berkeley size: flash = text + data, static RAM = data + bss.
    read -r flash ram <<EOF2
$(arm-none-eabi-size "$work/$case.elf" | awk 'NR == 2 { print $1 + $2, $2 + $3 }')
EOF2
    stack=$(value "$out" peak_stack)
    blob_bytes=$(value "$out" blob_bytes)
    used=$((ram + stack))
    if [ "$used" -le 262144 ] && [ "$flash" -le 1048576 ]; then
        fits=yes
    else
        over=""
        [ "$used" -le 262144 ] || over="RAM $(kb "$used")"
        [ "$flash" -le 1048576 ] || over="${over:+$over, }flash $(kb "$flash")"
        fits="no: $over"
    fi
    case "$map" in
    256k) mapname="256 KB RAM, 1 MB flash" ;;
    *) mapname="4 MB RAM, 4 MB flash" ;;
    esac
    inf=$(value "$out" per_inference)
    imacs=$(value "$out" inference_macs)
    if [ "$mode" = blob ]; then
        step=$(value "$out" per_step)
        smacs=$(value "$out" step_macs)
        adapted=$(value "$out" per_inference_adapted)
        step_cell="$(group "$step") ($(per_mac "$step" "$smacs"))"
        adapted_cell="$(group "$adapted")"
        losses="$(value "$out" loss_first) → $(value "$out" loss_last)"
        layers=$(sed -n 's/^model: .*, \([0-9]*\) layers adapting ([0-9]* parameters)$/\1/p' "$out")
        params=$(sed -n 's/^model: .*, [0-9]* layers adapting (\([0-9]*\) parameters)$/\1/p' "$out")
        what="$adapt: $layers layer$([ "$layers" = 1 ] || echo s), $(group "$params") parameters"
    else
        step_cell="—"
        adapted_cell="—"
        losses="—"
        what="predict only"
    fi
    dtype=$(sed -n 's/^model: [^ ]* (\([a-z0-9]*\)).*/\1/p' "$out")
    echo "| $case | $dtype | $what | $mapname | $(group "$inf") ($(per_mac "$inf" "$imacs")) | $adapted_cell | $step_cell | $losses | $(group "$stack") B | $(group "$ram") B | $(group "$used") B | $(group "$flash") B ($(group "$blob_bytes") blob) | $fits |" >>"$rows"
done <"$work/cases.txt"

{
    echo "| case | weights | adapts | memory map | instructions / inference (/ MAC) | / inference after adapting | instructions / SGD step (/ MAC) | loss, first → last step | peak stack | static RAM | RAM used | flash (blob) | fits 256 KB RAM, 1 MB flash |"
    echo "|---|---|---|---|---:|---:|---:|---|---:|---:|---:|---:|---|"
    cat "$rows"
} >"$work/report.md"
cat "$work/report.md"
say "every case ran, its losses fell and equal the host's; table in firmware-examples/target/models-m4/report.md"
