#!/bin/sh
# Cargo runner: boots the firmware ELF in QEMU mps2-an386 (Cortex-M4F) with semihosting (its
# output and exit code) and `-icount shift=0`, so one guest instruction takes 1 ns of virtual
# time and SysTick (25 MHz) counts 40 instructions per tick, deterministically. Both memory
# maps (memory-256k.x, memory-4m.x) are regions of this machine's 4 MB + 4 MB.
set -eu
elf="$1"
shift
exec timeout "${ANOLE_QEMU_TIMEOUT:-600}" qemu-system-arm \
    -machine mps2-an386 -cpu cortex-m4 -nographic -monitor none -serial none \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$elf" "$@"
