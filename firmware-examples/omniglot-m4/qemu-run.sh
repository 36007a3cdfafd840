#!/bin/sh
# Cargo runner: boots the firmware ELF in QEMU with semihosting (its output and exit code) and
# `-icount shift=0`, so one guest instruction takes 1 ns of virtual time and SysTick counts
# instructions deterministically. The machine follows the ELF's memory map: linked for flash
# at 0x08000000 (memory.x) it runs on netduinoplus2 (STM32F405, 128 KB SRAM), linked at 0
# (the `mps2-an386` feature) on mps2-an386.
set -eu
elf="$1"
shift
entry=$(od -A n -t x4 -j 24 -N 4 "$elf" | tr -d ' ')
case "$entry" in
08*) machine=netduinoplus2 ;;
*) machine=mps2-an386 ;;
esac
exec timeout "${ANOLE_QEMU_TIMEOUT:-600}" qemu-system-arm \
    -machine "$machine" -cpu cortex-m4 -nographic -monitor none -serial none \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$elf" "$@"
