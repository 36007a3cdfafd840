//! Names the architecture families the crate supports as cfgs: `cortex_m` (bare-metal Arm
//! M-profile: `thumbv6m`, `thumbv7em`, `thumbv8m`, with cortex-m-rt) and `riscv32` (bare-metal
//! RV32 with riscv-rt).

use std::env;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(cortex_m)");
    println!("cargo:rustc-check-cfg=cfg(riscv32)");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    match (arch.as_str(), os.as_str()) {
        ("arm", "none") => println!("cargo:rustc-cfg=cortex_m"),
        ("riscv32", "none") => println!("cargo:rustc-cfg=riscv32"),
        _ => {}
    }
}
