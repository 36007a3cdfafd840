//! Board support for the anole firmware examples, written once: what every example needs from
//! its board besides the application itself.
//!
//! - [`Clock`]: the counter adaptation and prediction are timed with; on Cortex-M
//!   `cortex::SysTickClock` (core cycles on silicon, guest instructions under QEMU's
//!   `-icount shift=0`), on RISC-V `riscv32::Minstret` (retired instructions).
//! - [`stack`]: the painted stack's high-water mark, bounded by the current stack pointer.
//! - Output and exit: with feature `semihosting`, `println!`, `fail`, `exit` and the panic and
//!   fault handlers through semihosting (QEMU or a debugger); with feature `defmt` (Cortex-M),
//!   defmt over RTT, panics through panic-probe, the exit status through semihosting.
//! - [`kernel_check`]: the runtime's dense kernels as built for this target (FPU assembly on
//!   hard-float Cortex-M, Rust elsewhere) against scalar loops on many shapes, bit for bit, in
//!   scratch memory the firmware lends (its arena, before the application uses it);
//!   [`conv_kernel_check`] likewise for the convolution of the Omniglot firmware's layers.
//!
//! The architecture is taken from the target: Cortex-M (Armv6-M, Armv7E-M, Armv8-M) on
//! `thumb*-none-eabi*` with cortex-m-rt, RISC-V on `riscv32*-unknown-none-elf` with riscv-rt.
//! On any other target (the host, Linux) only [`Clock`] and [`kernel_check`] exist, so
//! applications stay testable on the host.
#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

#[cfg(all(feature = "semihosting", feature = "defmt"))]
compile_error!("features `semihosting` and `defmt` each install a panic handler: enable one");
#[cfg(all(feature = "semihosting", not(any(cortex_m, riscv32))))]
compile_error!("feature `semihosting` is for bare-metal Cortex-M and RISC-V targets");
#[cfg(all(feature = "defmt", not(cortex_m)))]
compile_error!("feature `defmt` is for bare-metal Cortex-M targets");

mod conv_check;
#[cfg(cortex_m)]
pub mod cortex;
#[cfg(feature = "defmt")]
mod defmt_out;
mod kernel_check;
#[cfg(riscv32)]
pub mod riscv32;
#[cfg(feature = "semihosting")]
mod semihosting;
#[cfg(any(cortex_m, riscv32))]
pub mod stack;

pub use conv_check::{
    conv_costs, conv_kernel_check, ConvCheckError, ConvCost, CONV_SCRATCH_LEN, COST_SCRATCH_LEN,
    COST_SHAPES,
};
#[cfg(feature = "defmt")]
pub use defmt_out::fail;
pub use kernel_check::{kernel_check, KernelCheckError, SCRATCH_LEN};
#[cfg(feature = "semihosting")]
pub use semihosting::{check_conv_kernels, check_kernels, check_stack, fail, println};

/// A monotonic counter that adaptation and prediction are timed with.
pub trait Clock {
    /// Current count, in [`Clock::unit`]s.
    fn now(&mut self) -> u64;
    /// What one count is ("instructions", "cycles", ...).
    fn unit(&self) -> &'static str;
}

/// xorshift32 (Marsaglia 2003): a 4-byte PRNG, plenty for drawing demo tasks and
/// samples; the same numbers on every target.
#[derive(Clone, Debug)]
pub struct Rng(u32);

impl Rng {
    /// A generator from `seed` (zero is replaced, xorshift has no zero state).
    pub const fn new(seed: u32) -> Rng {
        Rng(if seed == 0 { 0x9e37_79b9 } else { seed })
    }
    /// Next 32 random bits.
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
    /// Uniform in `[lo, hi)` (24 random bits).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u32() >> 8) as f32 * (1.0 / 16_777_216.0);
        lo + (hi - lo) * u
    }
}

/// A [`Clock`] that counts its own readings: for host tests of applications, where costs are
/// not measured but the code that measures them runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallCount(pub u64);

impl Clock for CallCount {
    fn now(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
    fn unit(&self) -> &'static str {
        "calls"
    }
}

/// End the program: with semihosting's exit status 0 (`success`) or 1, which QEMU and
/// `probe-rs run` return as their own. Without a debugger attached, the core halts.
#[cfg(any(cortex_m, riscv32))]
pub fn exit(success: bool) -> ! {
    #[cfg(cortex_m)]
    use cortex_m_semihosting::debug;
    #[cfg(riscv32)]
    use riscv_semihosting::debug;
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        #[cfg(cortex_m)]
        cortex_m::asm::wfi();
        #[cfg(riscv32)]
        riscv::asm::wfi();
    }
}
