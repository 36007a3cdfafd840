//! The stack's high-water mark.
//!
//! At reset, before any Rust code runs, the stack region is filled with [`PAINT`]: on Cortex-M
//! by cortex-m-rt's `paint-stack` feature (`[_stack_end, _stack_start)`), on RISC-V by this
//! crate's riscv-rt `pre-init` hook (`[__estack, _stack_start)`). A word the program has pushed
//! no longer holds the paint (unless it pushed that very value), so the deepest non-paint word
//! marks the deepest the stack has been. [`usage`] scans upward from the bottom of the region
//! and stops at the current stack pointer: words below it belong to no live frame, words above
//! it may be borrowed by the caller and are never read.

/// The value the stack is painted with at reset.
pub const PAINT: u32 = 0xcccc_cccc;
#[cfg(cortex_m)]
const _: () = assert!(PAINT == cortex_m_rt::STACK_PAINT_VALUE);

/// How much of the stack has been used since reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackUsage {
    /// Bytes between the top of the stack and the deepest word written.
    pub peak: usize,
    /// Bytes available to the stack (from the end of static RAM to the top of RAM).
    pub size: usize,
}

impl StackUsage {
    /// True when the paint at the very bottom is gone: the stack may have run into static RAM.
    pub fn exhausted(&self) -> bool {
        self.peak >= self.size
    }
}

/// The stack region: `(bottom, top)`, the end of static RAM (rounded up to a word) and the
/// initial stack pointer.
#[allow(unsafe_code)] // declares linker symbols; only their addresses are taken
fn region() -> (usize, usize) {
    extern "C" {
        static _stack_start: u32;
        #[cfg(cortex_m)]
        static _stack_end: u32;
        #[cfg(riscv32)]
        static __estack: u32;
    }
    #[cfg(cortex_m)]
    let bottom = core::ptr::addr_of!(_stack_end);
    #[cfg(riscv32)]
    let bottom = core::ptr::addr_of!(__estack);
    // Painting starts at the first whole word.
    let bottom = (bottom as usize).next_multiple_of(4);
    (bottom, core::ptr::addr_of!(_stack_start) as usize)
}

/// The current stack pointer.
#[inline(always)]
#[allow(unsafe_code)]
fn stack_pointer() -> usize {
    #[cfg(cortex_m)]
    return cortex_m::register::msp::read() as usize;
    #[cfg(riscv32)]
    {
        let sp: usize;
        // SAFETY: copies the stack pointer into a register; no memory is touched.
        unsafe { core::arch::asm!("mv {}, sp", out(reg) sp, options(nomem, nostack)) };
        sp
    }
}

/// The stack's high-water mark since reset: the lowest word below the current stack pointer
/// that no longer holds [`PAINT`], or the current stack pointer when every word below it does.
#[inline(never)]
#[allow(unsafe_code)]
pub fn usage() -> StackUsage {
    let (bottom, top) = region();
    // Everything below this frame's stack pointer is free: no live object is there.
    let sp = stack_pointer();
    let end = sp.clamp(bottom, top) & !3;
    let mut addr = bottom;
    while addr < end {
        // SAFETY: `addr` is 4-byte aligned (`region` rounds the bottom up, and `addr` moves
        // in steps of 4) and lies in `[bottom, sp)`: inside the stack region, which is RAM and
        // always readable, and below the current stack pointer, so no Rust object lives there
        // (interrupt frames pushed meanwhile are gone again before this thread resumes, and
        // the read is volatile, so the compiler neither caches nor elides it).
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != PAINT {
            break;
        }
        addr += 4;
    }
    StackUsage {
        peak: top - addr,
        size: top - bottom,
    }
}
