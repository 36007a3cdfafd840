#!/bin/sh
# Builds every firmware example, runs the emulated ones and prints their cost, one markdown
# table per target (also written to target/firmware-report.md). Exits non-zero on any failure.
#
#   board, app-sine host tests of the board support (the kernel check) and of the sine demo.
#   qemu-cortex-m4  Cortex-M4F firmware in QEMU (mps2-an386, -icount shift=0): must pass the
#                   kernel check (the FPU kernels against scalar loops on many shapes), exit 0
#                   and lower the held-out loss; prints instructions per step/prediction/MAC, stack.
#   (same, thumbv6m) the same firmware built for Armv6-M (Cortex-M0+), run in QEMU the same way.
#   (same, thumbv8m) the same firmware built for Armv8-M Mainline with FPU (Cortex-M33), run in
#                   QEMU mps2-an505.
#   qemu-riscv32    the sine firmware on RISC-V (QEMU virt, -icount shift=0, instructions from
#                   minstret), built for RV32IMAC and for RV32IMC (no atomic instructions).
#   nrf52840        built; booted in QEMU mps2-an386 (same memory map) where it must exit 0;
#                   also built for thumbv6m and booted on mps2-an385: the rp2040 application.
#   rp2040          built (its cost is the thumbv6m run's).
#   omniglot-m4     Omniglot 5-way 5-shot, head-only, f16 init in flash: built for the
#                   netduinoplus2 (STM32F405: 1 MB flash, 128 KB SRAM) and run in QEMU; must exit 0
#                   (query accuracy above chance) and pass the convolution kernel check (the
#                   register-blocked kernels against a scalar loop); prints accuracy,
#                   instructions per step and per prediction, stack, RAM and flash.
#   linux-aarch64   cross-built, run under qemu-aarch64: unit tests, the demo (its losses must
#                   equal the Cortex-M and RISC-V ones bit for bit: one engine), and CSV
#                   adapt/predict.
#
# Needs: a Rust toolchain with the targets (rustup target add ...) or Debian's rustc-web,
# cargo-web and rust-web-src; qemu-system-arm, qemu-system-misc (RISC-V), qemu-user,
# gcc-arm-none-eabi, binutils-riscv64-unknown-elf, gcc-aarch64-linux-gnu. Missing Debian
# packages are installed with apt-get. Offline apart from crates.io.
set -eu
cd "$(dirname "$0")"
here=$(pwd)
model=../models/sine/init.postcard
omniglot_model=../models/omniglot-5way/init.f16.postcard
# The Omniglot firmware runs on the netduinoplus2 map (128 KB of SRAM, checked below).
# "--features mps2-an386" links it for QEMU mps2-an386 (4 MB of RAM) instead.
omniglot_features=""
report=target/firmware-report.md
work=target/run
mkdir -p "$work"

say() { printf '\n== %s\n' "$*" >&2; }
die() {
    printf 'run.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

# ---------------------------------------------------------------- tools
rustup_has() { command -v rustup >/dev/null 2>&1 && rustup target list --installed 2>/dev/null | grep -qx "$1"; }
pkgs=""
need_cmd() { command -v "$1" >/dev/null 2>&1 || pkgs="$pkgs $2"; }
need_cmd qemu-system-arm qemu-system-arm
need_cmd qemu-system-riscv32 qemu-system-misc
need_cmd riscv64-unknown-elf-size binutils-riscv64-unknown-elf
need_cmd qemu-aarch64 qemu-user
need_cmd arm-none-eabi-ld gcc-arm-none-eabi
need_cmd aarch64-linux-gnu-gcc gcc-aarch64-linux-gnu
need_cmd cc gcc # links the host build scripts
need_cmd timeout coreutils
need_cmd awk gawk
all_targets=true
for t in thumbv7em-none-eabihf thumbv6m-none-eabi thumbv8m.main-none-eabihf \
    riscv32imac-unknown-none-elf riscv32imc-unknown-none-elf aarch64-unknown-linux-gnu; do
    rustup_has "$t" || all_targets=false
done
if [ "$all_targets" = false ]; then
    [ -x /usr/bin/rustc ] || pkgs="$pkgs rustc-web"
    [ -x /usr/bin/cargo ] || pkgs="$pkgs cargo-web"
    [ -d /usr/lib/rustlib/src/rust/library ] || pkgs="$pkgs rust-web-src"
fi
if [ -n "$pkgs" ]; then
    say "installing$pkgs"
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    # shellcheck disable=SC2086 # word splitting of the package list is intended
    $sudo apt-get install -y --no-install-recommends $pkgs ||
        { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends $pkgs; } ||
        die "cannot install$pkgs"
fi
[ -f "$model" ] || die "$model is missing: train it first (anole train sine --out models/sine)"
[ -f "$omniglot_model" ] || die "$omniglot_model is missing: train it first (anole train omniglot --data ../shared/data/omniglot --ways 5 --out models/omniglot-5way)"

xcargo() { (cd "$1" && shift && "$here/xcargo" "$@" >&2) || die "cargo $* in $1"; }
elf_m4=target/thumbv7em-none-eabihf/release/anole-qemu-cortex-m4
elf_m0=target/thumbv6m-none-eabi/release/anole-qemu-cortex-m4
elf_m33=target/thumbv8m.main-none-eabihf/release/anole-qemu-cortex-m4
elf_rv=target/riscv32imac-unknown-none-elf/release/anole-qemu-riscv32
elf_rvc=target/riscv32imc-unknown-none-elf/release/anole-qemu-riscv32
elf_nrf=target/thumbv7em-none-eabihf/release/anole-nrf52840
elf_nrf_m0=target/thumbv6m-none-eabi/release/anole-nrf52840
elf_rp=target/thumbv6m-none-eabi/release/anole-rp2040
bin_a64=target/aarch64-unknown-linux-gnu/release/anole-linux
elf_omni=target/thumbv7em-none-eabihf/release/anole-omniglot-m4

# ---------------------------------------------------------------- build
say "host tests of the board support (the kernel check) and of the sine demo (app-sine)"
xcargo board test --release
xcargo app-sine test --release
say "build qemu-cortex-m4 (thumbv7em-none-eabihf, thumbv6m-none-eabi, thumbv8m.main-none-eabihf)"
xcargo qemu-cortex-m4 build --release
xcargo qemu-cortex-m4 build --release --target thumbv6m-none-eabi
xcargo qemu-cortex-m4 build --release --target thumbv8m.main-none-eabihf
say "build qemu-riscv32 (riscv32imac-unknown-none-elf and riscv32imc-unknown-none-elf)"
xcargo qemu-riscv32 build --release
xcargo qemu-riscv32 build --release --target riscv32imc-unknown-none-elf
say "build nrf52840 (and its defmt application as Armv6-M code, what rp2040 runs, for QEMU)"
xcargo nrf52840 build --release
xcargo nrf52840 build --release --target thumbv6m-none-eabi
say "build rp2040"
xcargo rp2040 build --release
say "host tests of omniglot-m4 (the same application on the host: above chance, the trainer's predictions)"
host=$(rustc -vV | sed -n 's/^host: //p')
(cd omniglot-m4 && cargo test --release --target "$host" --lib >&2) || die "omniglot-m4 host tests"
say "build omniglot-m4 (${omniglot_features:-netduinoplus2})"
# shellcheck disable=SC2086 # word splitting of the feature flags is intended
xcargo omniglot-m4 build --release $omniglot_features
say "build and test linux-aarch64 (tests run under qemu-aarch64)"
xcargo linux-aarch64 test --release
xcargo linux-aarch64 build --release

# ---------------------------------------------------------------- run
# Run a firmware ELF in QEMU; its output goes to $2, its exit status must be 0.
run_fw() { # elf output-file [runner]
    status=0
    "${3:-qemu-cortex-m4/qemu-run.sh}" "$1" >"$2" 2>&1 || status=$?
    cat "$2" >&2
    [ "$status" = 0 ] || die "$1 exited with $status under QEMU"
}
value() { sed -n "s/^$2=//p" "$1" | head -n 1; }

# The firmware's own check of the runtime's kernels against scalar loops must have passed.
check_kernels() { # output-file label
    grep -qx 'kernel_check=ok' "$1" || die "$2: no kernel_check=ok in its output"
}

check_demo() { # output-file label
    check_kernels "$1" "$2"
    before=$(value "$1" loss_before)
    after=$(value "$1" loss_after)
    [ -n "$before" ] && [ -n "$after" ] || die "$2: no loss in its output"
    awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b) }' || die "$2: held-out loss did not fall ($before -> $after)"
}

say "run qemu-cortex-m4 on the Cortex-M4F (mps2-an386)"
run_fw "$elf_m4" "$work/m4.txt"
check_demo "$work/m4.txt" "Cortex-M4F"
say "run the same firmware built for Armv6-M (thumbv6m, mps2-an385)"
run_fw "$elf_m0" "$work/m0.txt"
check_demo "$work/m0.txt" "Armv6-M"
say "run the same firmware built for Armv8-M (thumbv8m.main, Cortex-M33, mps2-an505)"
run_fw "$elf_m33" "$work/m33.txt"
check_demo "$work/m33.txt" "Cortex-M33"
say "run qemu-riscv32 on RV32IMAC and RV32IMC (QEMU virt)"
run_fw "$elf_rv" "$work/rv.txt" qemu-riscv32/qemu-run.sh
check_demo "$work/rv.txt" "RV32IMAC"
run_fw "$elf_rvc" "$work/rvc.txt" qemu-riscv32/qemu-run.sh
check_demo "$work/rvc.txt" "RV32IMC"
# The defmt firmware logs to RTT, which needs a probe, but it checks its own result and stack
# and exits through semihosting: booting it in QEMU (flash at 0, RAM at 0x20000000, like the
# nRF52840) checks that the application as flashed adapts within its 64 KB RAM budget.
say "boot the nrf52840 firmware in QEMU mps2-an386 (must exit 0)"
run_fw "$elf_nrf" "$work/nrf.txt"
say "boot the same defmt application built for Armv6-M in QEMU mps2-an385 (must exit 0)"
run_fw "$elf_nrf_m0" "$work/nrf-m0.txt"

say "run omniglot-m4: Omniglot 5-way 5-shot, head-only (must classify above chance)"
run_fw "$elf_omni" "$work/omniglot.txt" omniglot-m4/qemu-run.sh
check_kernels "$work/omniglot.txt" omniglot-m4
grep -qx 'conv_kernel_check=ok' "$work/omniglot.txt" || die "omniglot-m4: no conv_kernel_check=ok in its output"
correct=$(value "$work/omniglot.txt" correct)
queries=$(value "$work/omniglot.txt" queries)
[ -n "$correct" ] && [ -n "$queries" ] || die "omniglot-m4: no accuracy in its output"
[ $((correct * 5)) -gt "$queries" ] || die "omniglot-m4: $correct/$queries queries right is not above chance"

# ---------------------------------------------------------------- C firmware (c-cortex-m4)
# The same demo in C through the C API and its static library; c-cortex-m4/run.sh checks it
# against the Cortex-M4F run above (losses bit for bit; instructions per step, per prediction
# and per MAC within 1%).
say "c-cortex-m4: the sine demo in C (make and CMake builds), checked against the Cortex-M4F run"
bash c-cortex-m4/run.sh "$work/m4.txt" >"$work/c.txt" || die "c-cortex-m4"
cat "$work/c.txt" >&2

say "linux-aarch64: the demo under qemu-aarch64"
a64() { linux-aarch64/run-aarch64.sh "$bin_a64" "$@"; }
a64 --demo >"$work/a64.txt" || die "linux-aarch64 --demo failed"
cat "$work/a64.txt" >&2
check_demo "$work/a64.txt" "aarch64"
for key in loss_before loss_after; do
    m4=$(value "$work/m4.txt" $key)
    for run in m0:Armv6-M m33:Cortex-M33 rv:RV32IMAC rvc:RV32IMC a64:aarch64; do
        other=$(value "$work/${run%%:*}.txt" $key)
        [ "$other" = "$m4" ] ||
            die "$key differs between Cortex-M4F ($m4) and ${run#*:} ($other): the engine is not bit-identical across targets"
    done
done
echo "same losses, bit for bit, on Cortex-M4F, Armv6-M, Cortex-M33, RV32IMAC, RV32IMC and aarch64" >&2

say "linux-aarch64: adapt on CSV samples, predict CSV queries"
# A sine task the model has not seen: 10 samples, 100 queries, and the truth for the queries.
awk 'BEGIN { a = 2.5; b = 1.0; print "x,y"
    for (i = 0; i < 10; i++) { x = -4.5 + i; printf "%.6f,%.6f\n", x, a * sin(x + b) } }' >"$work/support.csv"
awk 'BEGIN { a = 2.5; b = 1.0; print "x"
    for (i = 0; i < 100; i++) { x = -4.95 + 0.1 * i; printf "%.6f\n", x } }' >"$work/query.csv"
a64 --steps 0 "$work/support.csv" "$work/query.csv" >"$work/pred0.csv" 2>"$work/pred0.err" || die "linux-aarch64 predict: $(cat "$work/pred0.err")"
a64 "$work/support.csv" "$work/query.csv" >"$work/pred.csv" 2>"$work/pred.err" || die "linux-aarch64 adapt: $(cat "$work/pred.err")"
cat "$work/pred.err" >&2
mse() { awk -F, 'NR > 1 { d = $2 - 2.5 * sin($1 + 1.0); s += d * d; n++ } END { if (n != 100) exit 1; printf "%.6f", s / n }' "$1"; }
mse0=$(mse "$work/pred0.csv") || die "linux-aarch64: expected 100 prediction rows"
mse1=$(mse "$work/pred.csv") || die "linux-aarch64: expected 100 prediction rows"
echo "query MSE against the true sine: $mse0 before adapting, $mse1 after" >&2
awk -v b="$mse0" -v a="$mse1" 'BEGIN { exit !(a < b) }' || die "linux-aarch64: adapting did not lower the query MSE ($mse0 -> $mse1)"

say "linux-aarch64: guest instructions (qemu-aarch64 -singlestep, one trace line per instruction)"
# One translation block per instruction: -one-insn-per-tb (QEMU 8.1+), -singlestep before.
onetb=-singlestep
qemu-aarch64 -h 2>/dev/null | grep -q one-insn-per-tb && onetb=-one-insn-per-tb
count() { # guest instructions of one run of the binary with the given arguments
    qemu-aarch64 -L "${ANOLE_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}" "$onetb" -d exec,nochain -D /dev/fd/3 \
        "$bin_a64" "$@" 3>&1 >/dev/null 2>/dev/null | grep -c '^Trace'
}
c1=$(count --steps 1 "$work/support.csv")
c3=$(count --steps 3 "$work/support.csv")
cq=$(count --steps 1 "$work/support.csv" "$work/query.csv")
a64_step=$(((c3 - c1) / 2))
a64_pred=$(((cq - c1) / 100))
[ "$a64_step" -gt 0 ] && [ "$a64_pred" -gt 0 ] || die "linux-aarch64: instruction counts failed ($c1, $c3, $cq)"

# ---------------------------------------------------------------- report
group() { echo "$1" | awk '{ s = $1; o = ""; while (length(s) > 3) { o = "," substr(s, length(s) - 2) o; s = substr(s, 1, length(s) - 3) } print s o }'; }
sizes() { # tool elf -> "flash static_ram" (Berkeley: flash = text + data, RAM = data + bss)
    # riscv-rt reserves the stack (and a heap, empty here) as NOLOAD sections that size counts
    # as bss: they are not static data.
    reserved=$("$1" -A "$2" | awk '$1 == ".stack" || $1 == ".heap" { s += $2 } END { print s + 0 }')
    "$1" "$2" | awk -v r="$reserved" 'NR == 2 { print $1 + $2, $2 + $3 - r }'
}
budget=32768
table() { # title out-file size-tool elf
    read -r flash ram <<EOF
$(sizes "$3" "$4")
EOF
    step=$(value "$2" per_step)
    pred=$(value "$2" per_prediction)
    mac=$(value "$2" per_mac)
    stack=$(value "$2" peak_stack)
    used=$((ram + stack))
    [ "$used" -le "$budget" ] || die "$1: static RAM $ram + peak stack $stack = $used bytes exceed the 32 KB budget"
    printf '### %s\n\n' "$1"
    echo "| instructions / step | instructions / prediction | instructions / MAC | peak stack | static RAM | RAM used (budget 32 KB) | flash |"
    echo "|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $(group "$step") | $(group "$pred") | $mac | $(group "$stack") B | $(group "$ram") B | $(group "$used") B | $(group "$flash") B |"
    echo
}
macs=$(value "$work/m4.txt" macs_per_step)
{
    echo "## Firmware cost of the sine demo"
    echo
    echo "Model: $(sed -n 's/^model: //p' "$work/m4.txt")."
    echo
    echo "One adaptation step = one SGD step on the 10 support samples: $(group "$macs") multiply-accumulates"
    echo "(dense forward, weight gradients and input gradients, per sample x 10). Instructions are guest"
    echo "instructions counted by QEMU; RAM and flash come from the ELF (size); peak stack"
    echo "is the painted stack's high-water mark after adapting."
    echo
    table "Cortex-M4F: qemu-cortex-m4 (thumbv7em-none-eabihf, QEMU mps2-an386, -icount shift=0)" "$work/m4.txt" arm-none-eabi-size "$elf_m4"
    table "Cortex-M0+ code: qemu-cortex-m4 built for thumbv6m-none-eabi (soft float; QEMU mps2-an385)" "$work/m0.txt" arm-none-eabi-size "$elf_m0"
    table "Cortex-M33: qemu-cortex-m4 built for thumbv8m.main-none-eabihf (QEMU mps2-an505, -icount shift=0)" "$work/m33.txt" arm-none-eabi-size "$elf_m33"
    table "RV32IMAC: qemu-riscv32 (riscv32imac-unknown-none-elf, soft float; QEMU virt, -icount shift=0, minstret)" "$work/rv.txt" riscv64-unknown-elf-size "$elf_rv"
    table "RV32IMC: qemu-riscv32 built for riscv32imc-unknown-none-elf (no atomics, soft float; QEMU virt, minstret)" "$work/rvc.txt" riscv64-unknown-elf-size "$elf_rvc"
    read -r flash ram <<EOF
$(sizes arm-none-eabi-size "$elf_nrf")
EOF
    printf '### nRF52840 (thumbv7em-none-eabihf, defmt over RTT; on a board `cargo run --release` logs core cycles)\n\n'
    echo "| instructions / step | instructions / prediction | instructions / MAC | peak stack | static RAM | flash |"
    echo "|---:|---:|---:|---:|---:|---:|"
    echo "| = Cortex-M4F (same code) | = Cortex-M4F | = Cortex-M4F | fits (booted in QEMU, stack checked) | $(group "$ram") B | $(group "$flash") B |"
    echo
    read -r flash ram <<EOF
$(sizes arm-none-eabi-size "$elf_rp")
EOF
    printf '### RP2040 (thumbv6m-none-eabi, defmt over RTT; on a board `cargo run --release` logs core cycles)\n\n'
    echo "| instructions / step | instructions / prediction | instructions / MAC | peak stack | static RAM | flash |"
    echo "|---:|---:|---:|---:|---:|---:|"
    echo "| = Cortex-M0+ code (same code) | = Cortex-M0+ code | = Cortex-M0+ code | fits (its application booted in QEMU, stack checked) | $(group "$ram") B | $(group "$flash") B |"
    echo
    read -r flash ram <<EOF
$(sizes aarch64-linux-gnu-size "$bin_a64")
EOF
    printf '### Linux aarch64: linux-aarch64 (aarch64-unknown-linux-gnu, qemu-aarch64 -singlestep)\n\n'
    echo "| instructions / step | instructions / prediction | instructions / MAC | peak stack | static RAM | binary (text + data) |"
    echo "|---:|---:|---:|---:|---:|---:|"
    a64_mac=$(awk -v s="$a64_step" -v m="$macs" 'BEGIN { printf "%.2f", s / m }')
    echo "| $(group "$a64_step") | $(group "$a64_pred") (batched, incl. CSV parse and print) | $a64_mac | n/a (arena on the heap) | $(group "$ram") B | $(group "$flash") B |"
    echo
    read -r flash ram <<EOF
$(sizes arm-none-eabi-size "$elf_omni")
EOF
    o="$work/omniglot.txt"
    stack=$(value "$o" peak_stack)
    used=$((ram + stack))
    case "$omniglot_features" in
    *mps2-an386*) machine="QEMU mps2-an386 with 4 MB of RAM" ;;
    *)
        machine="QEMU netduinoplus2: STM32F405, 1 MB flash, 128 KB SRAM"
        [ "$used" -le 131072 ] || die "omniglot-m4: static RAM $ram + peak stack $stack = $used bytes exceed 128 KB"
        ;;
    esac
    printf '### Omniglot 5-way 5-shot, head-only: omniglot-m4 (thumbv7em-none-eabihf, %s, -icount shift=0)\n\n' "$machine"
    echo "The f16 init stays in flash; the frozen body computes each support image's features once and"
    echo "the head adapts on them ($(sed -n 's/^adapt: head only, //p' "$o")); each query"
    echo "is then classified on its own (body + head). Held-out characters; the host's head-only"
    echo "predictions for the same episode agree on $(value "$o" host_agreement) queries."
    echo
    episode=$(value "$o" episode)
    # One instruction per cycle at the STM32F405's 168 MHz: an estimate (QEMU counts instructions).
    seconds=$(awk -v e="$episode" 'BEGIN { printf "%.2f", e / 168e6 }')
    echo "| query accuracy | instructions / adaptation step | instructions / support image (features) | instructions / prediction | instructions / episode | seconds at 168 MHz (estimate) | peak stack | static RAM | RAM used | flash |"
    echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    echo "| $correct/$queries = $(value "$o" accuracy)% | $(group "$(value "$o" per_step)") | $(group "$(value "$o" per_feature)") | $(group "$(value "$o" per_prediction)") | $(group "$episode") | $seconds | $(group "$stack") B | $(group "$ram") B | $(group "$used") B | $(group "$flash") B |"
    echo
    echo "Convolution cost per MAC on the body's layer shapes (one sample, 4 output channels):"
    echo
    sed -n 's/^conv_cost=\(.*\)$/- \1/p' "$o"
    echo
    printf '### Flash by part (flash-split.py: the ELF symbols of each crate)\n\n'
    python3 flash-split.py --header "$elf_m4" --blob "${ANOLE_SINE_MODEL:-../models/sine/init.postcard}" \
        --name "sine, Cortex-M4F (runtime: no default features)"
    NM=riscv64-unknown-elf-nm python3 flash-split.py "$elf_rv" --blob "${ANOLE_SINE_MODEL:-../models/sine/init.postcard}" \
        --name "sine, RV32IMAC (runtime: no default features)"
    python3 flash-split.py "$elf_omni" --blob "${ANOLE_OMNIGLOT_MODEL:-../models/omniglot-5way/init.f16.postcard}" \
        --name "omniglot-m4, Cortex-M4F (runtime: conv, norm, cross-entropy, adam, conv-kernels)"
    echo
} >"$report"
cat "$report"
say "all firmware examples built and passed; report in firmware-examples/$report"
