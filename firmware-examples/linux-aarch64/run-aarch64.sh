#!/bin/sh
# Cargo runner: runs an aarch64 Linux binary natively on an arm64 host, otherwise under
# qemu-aarch64 with the Debian cross libraries (package libc6-arm64-cross) as its root.
set -eu
case "$(uname -m)" in
aarch64 | arm64) exec "$@" ;;
*) exec qemu-aarch64 -L "${ANOLE_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}" "$@" ;;
esac
