#!/bin/sh
# Cargo runner: boots a firmware ELF in QEMU with semihosting (the firmware's output and exit
# code) and `-icount shift=0`, so one guest instruction takes 1 ns of virtual time and SysTick
# counts instructions deterministically. Everything runs on the Cortex-M4F mps2-an386 except
# thumbv6m builds: QEMU has no Cortex-M0 board with enough RAM, so their Armv6-M code (a subset
# of Armv7-M, executed instruction for instruction) runs on mps2-an385's Cortex-M3, same map;
# and thumbv8m.main builds, which run on mps2-an505's Cortex-M33.
set -eu
elf="$1"
shift
case "$elf" in
*thumbv6m-none-eabi*) machine=mps2-an385 cpu=cortex-m3 ;;
*thumbv8m.main-none-eabi*) machine=mps2-an505 cpu=cortex-m33 ;;
*) machine=mps2-an386 cpu=cortex-m4 ;;
esac
exec timeout "${ANOLE_QEMU_TIMEOUT:-300}" qemu-system-arm \
    -machine "$machine" -cpu "$cpu" -nographic -monitor none -serial none \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$elf" "$@"
