#!/bin/sh
# Cargo runner: boots a firmware ELF on QEMU's RISC-V virt machine with semihosting (the
# firmware's output and exit code) and `-icount shift=0`, so QEMU counts every guest
# instruction and `minstret` reads that count. `-bios none`: no SBI firmware, the core starts
# in machine mode at 0x80000000, the ELF's entry.
set -eu
elf="$1"
shift
exec timeout "${ANOLE_QEMU_TIMEOUT:-300}" qemu-system-riscv32 \
    -machine virt -cpu rv32 -smp 1 -bios none -nographic -monitor none -serial none \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$elf" "$@"
