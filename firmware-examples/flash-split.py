#!/usr/bin/env python3
"""Split a firmware's flash into the runtime's code, the application's, core's and the
compiler's, the model blob and the other constants, from the ELF's symbols.

    python3 firmware-examples/flash-split.py ELF [--blob BLOB] [--name NAME] [--top N]

Prints one Markdown table row (`--header` first prints the header). Every byte of the ELF's
flash sections (those loaded from flash: .vector_table, .text, .rodata, .data's load image, ...)
is counted once:

- runtime: symbols of the `anole` crate and of the crates it brings (postcard, serde, heapless,
  half, libm); application: the application's crates, the board support, cortex-m(-rt),
  semihosting, the vector table and startup code; core/compiler: `core`, `compiler_builtins`
  and the compiler's helper functions (`__aeabi_*`, `memcpy`, ...);
- blob: the model's bytes (found in the ELF with --blob);
- other constants: anonymous read-only data (strings, tables, panic locations), which the
  symbol table does not attribute to a crate;
- the rest (alignment padding between symbols) goes to "other constants" too.

With link-time optimisation a function of one crate inlined into another is counted where it
was inlined: the runtime's small accessors inlined into the application count as application
code. Needs binutils' `nm` for the target (arm-none-eabi-nm, or `NM=...`).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

RUNTIME = {"anole", "postcard", "serde", "serde_core", "heapless", "half", "libm", "hash32"}
CORE = {"core", "compiler_builtins", "alloc", "std"}
# Primitive types whose trait impls live in core (`<&str as core::fmt::Debug>::fmt`).
PRIMITIVES = {"str", "char", "bool", "f32", "f64", "u8", "u16", "u32", "u64", "u128", "usize",
              "i8", "i16", "i32", "i64", "i128", "isize", "_"}


def crate_of(name: str) -> str:
    """The crate a demangled symbol belongs to: the first path component of its type or
    function (`<anole::Error as core::fmt::Display>::fmt` -> anole)."""
    s = name.lstrip("<&*[(").removeprefix("mut ").removeprefix("dyn ").lstrip("<&*[(")
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)", s)
    if not m:
        return ""
    first = m.group(1)
    if "::" not in name and not name.startswith("<"):
        # An unmangled symbol: the compiler's helpers, or the startup code and vector table.
        if first.startswith("__aeabi") or first in {"memcpy", "memmove", "memset", "memcmp",
                                                    "bcmp", "strlen"} or re.match(
                                                        r"__(u|)(div|mod|mul|add|sub|cmp|fix|float|extend|trunc|ne|eq|lt|le|gt|ge|un|pow|clz|ctz|ashl|ashr|lshr)", first):
            return "core"
        return "application"
    if first in PRIMITIVES:
        return "core"
    return first


def category(name: str) -> str:
    c = crate_of(name)
    if c in RUNTIME:
        return "runtime"
    if c in CORE:
        return "core"
    if name.startswith(".L") or c == "":
        return "constants"
    return "application"


def nm_tool() -> str:
    for tool in (os.environ.get("NM"), "arm-none-eabi-nm", "riscv64-unknown-elf-nm", "nm"):
        if tool and shutil.which(tool):
            return tool
    sys.exit("flash-split: no nm found (install binutils-arm-none-eabi, or set NM)")


def flash_sections(elf: str):
    """(name, address, size, file offset) of the sections stored in flash: allocated and
    loaded, i.e. not NOBITS (.bss, stacks)."""
    out = subprocess.run(["readelf", "-SW", elf], check=True, capture_output=True, text=True).stdout
    secs = []
    for line in out.splitlines():
        m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+\S+\s+(\S*)", line)
        if not m:
            continue
        name, typ, addr, off, size, flags = m.groups()
        if "A" in flags and typ != "NOBITS" and int(size, 16) > 0:
            secs.append((name, int(addr, 16), int(size, 16), int(off, 16)))
    return secs


def split(elf: str, blob: str | None, top: int):
    secs = flash_sections(elf)
    total = sum(s[2] for s in secs)
    out = subprocess.run([nm_tool(), "-S", "-C", "--size-sort", elf], check=True,
                         capture_output=True, text=True).stdout
    sizes = {"runtime": 0, "application": 0, "core": 0, "constants": 0, "blob": 0}
    seen = 0
    runtime_syms = []

    def in_flash(addr: int) -> bool:
        return any(a <= addr < a + s for _, a, s, _ in secs)

    blob_range = None
    if blob:
        data = open(blob, "rb").read()
        raw = open(elf, "rb").read()
        for name, addr, size, off in secs:
            i = raw[off:off + size].find(data)
            if i >= 0:
                blob_range = (addr + i, addr + i + len(data))
                break
        if blob_range is None:
            sys.exit(f"flash-split: the bytes of {blob} are not in {elf}")
        sizes["blob"] = len(data)
        seen += len(data)
    for line in out.splitlines():
        parts = line.split(None, 3)
        if len(parts) < 4:
            continue
        addr, size, kind, name = int(parts[0], 16), int(parts[1], 16), parts[2], parts[3].strip()
        if kind in "bBuUaAN" or size == 0 or not in_flash(addr):
            continue
        if blob_range and blob_range[0] <= addr < blob_range[1]:
            continue  # the blob's own symbol
        cat = category(name)
        sizes[cat] += size
        seen += size
        if cat == "runtime":
            runtime_syms.append((size, name))
    # Padding between symbols, and anything the symbol table does not cover.
    sizes["constants"] += max(total - seen, 0)
    if top:
        for size, name in sorted(runtime_syms, reverse=True)[:top]:
            print(f"{size:8} {name}", file=sys.stderr)
    return total, sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("elf")
    ap.add_argument("--blob", help="the model blob embedded in the firmware")
    ap.add_argument("--name", help="the row's name (default: the ELF's file name)")
    ap.add_argument("--header", action="store_true", help="print the table's header first")
    ap.add_argument("--top", type=int, default=0, help="list the N largest runtime symbols on stderr")
    a = ap.parse_args()
    total, s = split(a.elf, a.blob, a.top)
    if a.header:
        print("| firmware | runtime code | application code | core and compiler code | model blob | other constants | flash |")
        print("|---|---:|---:|---:|---:|---:|---:|")
    blob = f"{s['blob']:,} B" if a.blob else "—"
    print(f"| {a.name or os.path.basename(a.elf)} | {s['runtime']:,} B | {s['application']:,} B | "
          f"{s['core']:,} B | {blob} | {s['constants']:,} B | {total:,} B |")


if __name__ == "__main__":
    main()
