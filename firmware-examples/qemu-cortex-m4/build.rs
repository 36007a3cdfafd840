//! Puts the memory map of the target's QEMU machine where the linker (`-Tlink.x` of
//! cortex-m-rt) finds it, as `memory.x` in `OUT_DIR`: `memory-mps2-an386.x` (mps2-an386 and
//! mps2-an385, the same map) or, for Armv8-M, `memory-mps2-an505.x`; and names the machine as a
//! cfg (`mps2_an505`). No `memory.x` in this folder, where the linker would look first.

use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-check-cfg=cfg(mps2_an505)");
    let map: &[u8] = if target.starts_with("thumbv8m") {
        println!("cargo:rustc-cfg=mps2_an505");
        include_bytes!("memory-mps2-an505.x")
    } else {
        include_bytes!("memory-mps2-an386.x")
    };
    fs::write(out.join("memory.x"), map).expect("OUT_DIR is writable");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory-mps2-an386.x");
    println!("cargo:rerun-if-changed=memory-mps2-an505.x");
}
