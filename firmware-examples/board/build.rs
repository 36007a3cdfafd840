//! Names the architecture families the crate supports as cfgs: `cortex_m` (bare-metal Arm
//! M-profile: `thumbv6m`, `thumbv7em`, `thumbv8m`, with cortex-m-rt).

use std::env;

fn main() {
    println!("cargo:rustc-check-cfg=cfg(cortex_m)");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "arm" && os == "none" {
        println!("cargo:rustc-cfg=cortex_m");
    }
}
