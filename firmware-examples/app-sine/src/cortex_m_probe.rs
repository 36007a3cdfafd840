//! Cost probes for Cortex-M boards: a 64-bit counter built on SysTick (core clock) and the
//! painted stack's high-water mark.
//!
//! SysTick counts core-clock ticks in 24 bits; the board's `SysTick` exception handler calls
//! [`on_systick`] at every wrap, and [`SysTickClock::now`] combines the wrap count and the
//! current value without a race. Under QEMU with `-icount shift=0` one guest instruction takes
//! 1 ns of virtual time, so on the MPS2 boards (25 MHz system clock) one tick is 40
//! instructions; on silicon one tick is one core cycle.

use crate::Clock;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};

const RELOAD: u32 = 0x00ff_ffff;
/// Number of SysTick wraps. Only the exception handler writes it (load + store, which
/// Armv6-M also has), the main thread only reads.
static WRAPS: AtomicU32 = AtomicU32::new(0);

/// Call this from the board's `#[exception] fn SysTick()`.
pub fn on_systick() {
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// A [`Clock`] on SysTick counting `scale` units per core-clock tick.
pub struct SysTickClock {
    _syst: SYST,
    scale: u64,
    unit: &'static str,
}

impl SysTickClock {
    /// Start SysTick on the core clock, full 24-bit period, interrupt at every wrap.
    pub fn start(mut syst: SYST, scale: u64, unit: &'static str) -> SysTickClock {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        SysTickClock {
            _syst: syst,
            scale,
            unit,
        }
    }

    /// Core-clock ticks since [`SysTickClock::start`].
    pub fn ticks(&self) -> u64 {
        loop {
            let w1 = WRAPS.load(Ordering::Relaxed);
            let p1 = SCB::is_pendst_pending();
            let v = SYST::get_current();
            let p2 = SCB::is_pendst_pending();
            let w2 = WRAPS.load(Ordering::Relaxed);
            // Unchanged wrap count and pending bit around the read: `v` belongs to period
            // `w1` (+1 when a wrap is pending but not yet handled).
            if w1 == w2 && p1 == p2 {
                let periods = u64::from(w1) + u64::from(p1);
                return periods * (u64::from(RELOAD) + 1) + u64::from(RELOAD - v);
            }
        }
    }
}

impl Clock for SysTickClock {
    fn now(&mut self) -> u64 {
        self.ticks() * self.scale
    }
    fn unit(&self) -> &'static str {
        self.unit
    }
}

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

/// Find the stack's high-water mark: the lowest word no longer holding the paint that
/// cortex-m-rt's `paint-stack` feature wrote between `_stack_end` and `_stack_start` at reset.
#[allow(unsafe_code)]
pub fn stack_usage() -> StackUsage {
    extern "C" {
        static _stack_start: u32;
        static _stack_end: u32;
    }
    let top = core::ptr::addr_of!(_stack_start) as usize;
    let bottom = core::ptr::addr_of!(_stack_end) as usize;
    let mut addr = bottom;
    while addr < top {
        // SAFETY: `addr` is 4-byte aligned (cortex-m-rt aligns `_stack_end`) and lies in
        // `[_stack_end, _stack_start)`, the stack region inside RAM, which is always readable.
        // Words below the current stack pointer belong to no live Rust object, and the scan
        // stops at the first word of the deepest frame, so it only reads (volatile, as u32)
        // memory that nothing borrows mutably.
        let word = unsafe { core::ptr::read_volatile(addr as *const u32) };
        if word != cortex_m_rt::STACK_PAINT_VALUE {
            break;
        }
        addr += 4;
    }
    StackUsage {
        peak: top - addr,
        size: top - bottom,
    }
}
