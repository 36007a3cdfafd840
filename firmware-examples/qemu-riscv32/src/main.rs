//! The anole sine demo on a 32-bit RISC-V core under QEMU (virt): parse the embedded
//! meta-learned blob, draw a new sine task, adapt on 10 samples, print the held-out loss before
//! and after and the cost (instructions per step and per prediction from `minstret`, peak
//! stack) over semihosting. Exits 0 when adapting lowered the loss, 1 otherwise or on any error.
#![no_std]
#![no_main]

use board::riscv32::Minstret;

#[riscv_rt::entry]
fn main() -> ! {
    static mut ARENA: [f32; app_sine::ARENA_LEN] = [0.0; app_sine::ARENA_LEN];
    // SAFETY: riscv-rt calls `main` once and never returns to it, and no other code names
    // `ARENA`: this is the only reference to it, ever.
    let arena = unsafe { &mut *core::ptr::addr_of_mut!(ARENA) };
    app_sine::semihosting::run_printed(core_name(), arena, &mut Minstret::start())
}

fn core_name() -> &'static str {
    if cfg!(target_feature = "a") {
        "RV32IMAC (QEMU virt)"
    } else {
        "RV32IMC, no atomics (QEMU virt)"
    }
}
