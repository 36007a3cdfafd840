//! RISC-V (RV32, machine mode, riscv-rt): a counter of retired instructions, the stack paint,
//! and the exception handler of the `semihosting` feature.
//!
//! `minstret` counts the instructions the hart retired, so the count is the same under QEMU and
//! on silicon (under QEMU with `-icount shift=0` it is the instruction count QEMU keeps). Its
//! 64 bits are read as two halves (`minstreth`, `minstret`), the high half read again to catch a
//! carry in between.

use crate::Clock;

/// A [`Clock`] counting retired instructions (`minstret`).
pub struct Minstret(());

impl Minstret {
    /// The counter, running since reset.
    pub fn start() -> Minstret {
        Minstret(())
    }
}

impl Clock for Minstret {
    fn now(&mut self) -> u64 {
        riscv::register::minstret::read64()
    }
    fn unit(&self) -> &'static str {
        "instructions"
    }
}

/// riscv-rt's `pre-init` hook, run at reset with the stack pointer at the top of the stack and
/// before RAM is initialized: fills the stack region `[__estack, _stack_start)` (from its first
/// whole word) with the paint (see `stack`), as cortex-m-rt's `paint-stack` does on Cortex-M.
// SAFETY: the hook runs before any Rust code and writes only whole words of the stack region,
// which holds nothing yet (its caller, riscv-rt's start code, keeps its state in registers).
// It uses only `t0`–`t2`, as riscv-rt requires (the boot arguments wait in `s0`–`s2`).
#[allow(unsafe_code)]
mod paint {
    core::arch::global_asm!(
        ".section .text.__pre_init, \"ax\"",
        ".global __pre_init",
        "__pre_init:",
        "    la t0, __estack",
        "    addi t0, t0, 3",
        "    andi t0, t0, -4",
        "    la t1, _stack_start",
        "    li t2, {paint}",
        "1:  bgeu t0, t1, 2f",
        "    sw t2, 0(t0)",
        "    addi t0, t0, 4",
        "    j 1b",
        "2:  ret",
        paint = const crate::stack::PAINT,
    );
}

/// On an exception no handler claimed: print its cause and address and end with failure.
#[cfg(feature = "semihosting")]
#[allow(unsafe_code)] // exported under the name riscv-rt's exception dispatch calls (C ABI)
#[export_name = "ExceptionHandler"]
extern "C" fn exception(_frame: &riscv_rt::TrapFrame) -> ! {
    crate::fail(format_args!(
        "exception {} at pc {:#010x}, mtval {:#010x}",
        riscv::register::mcause::read().code(),
        riscv::register::mepc::read(),
        riscv::register::mtval::read()
    ))
}
