//! Cortex-M (Armv6-M, Armv7E-M, Armv8-M): a 64-bit counter built on SysTick, the HardFault
//! handler of the output features, and the image's static RAM and flash from cortex-m-rt's
//! linker symbols.
//!
//! SysTick counts core-clock ticks in 24 bits; this crate's `SysTick` exception handler counts
//! the wraps, and [`SysTickClock::ticks`] combines the wrap count and the current value without
//! a race. Under QEMU with `-icount shift=0` one guest instruction takes 1 ns of virtual time,
//! so a tick is `10⁹ / core_hz` instructions ([`instructions_per_tick`]); on silicon one tick is
//! one core cycle ([`Cycles`]).

use crate::Clock;
use core::sync::atomic::{AtomicU32, Ordering};
use cortex_m::peripheral::syst::SystClkSource;
use cortex_m::peripheral::{SCB, SYST};

const RELOAD: u32 = 0x00ff_ffff;
/// Number of SysTick wraps. Only the exception handler writes it (load + store, which
/// Armv6-M also has), the main thread only reads.
static WRAPS: AtomicU32 = AtomicU32::new(0);

#[cortex_m_rt::exception]
fn SysTick() {
    WRAPS.store(
        WRAPS.load(Ordering::Relaxed).wrapping_add(1),
        Ordering::Relaxed,
    );
}

/// A [`Clock`] on SysTick: `NUM / DEN` units per core-clock tick. The ratio is a constant so
/// the conversion costs the timed code no division (none at all when `DEN` is 1).
pub struct SysTickClock<const NUM: u64, const DEN: u64> {
    _syst: SYST,
    unit: &'static str,
}

/// Core cycles: one unit per tick.
pub type Cycles = SysTickClock<1, 1>;

/// Guest instructions per tick under QEMU's `-icount shift=0` (1 ns each) on a core clocked at
/// `core_hz`, as a reduced fraction `(NUM, DEN)`: `10⁹ / core_hz`.
pub const fn instructions_per_tick(core_hz: u64) -> (u64, u64) {
    assert!(core_hz > 0, "the core clock must be above 0 Hz");
    let (num, den) = (1_000_000_000u64, core_hz);
    let g = gcd(num, den);
    (num / g, den / g)
}

impl<const NUM: u64, const DEN: u64> SysTickClock<NUM, DEN> {
    /// Start SysTick on the core clock, full 24-bit period, interrupt at every wrap, counting
    /// `unit`s ("cycles", "instructions").
    pub fn start(mut syst: SYST, unit: &'static str) -> Self {
        syst.disable_counter();
        syst.set_clock_source(SystClkSource::Core);
        syst.set_reload(RELOAD);
        syst.clear_current();
        syst.enable_interrupt();
        syst.enable_counter();
        SysTickClock { _syst: syst, unit }
    }

    /// Core-clock ticks since the clock started.
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

const fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl<const NUM: u64, const DEN: u64> Clock for SysTickClock<NUM, DEN> {
    fn now(&mut self) -> u64 {
        self.ticks() * NUM / DEN
    }
    fn unit(&self) -> &'static str {
        self.unit
    }
}

#[cfg(any(feature = "semihosting", feature = "defmt"))]
// cortex-m-rt requires the handler to be an `unsafe fn` and exports it under its vector name.
#[allow(unsafe_code)]
#[cortex_m_rt::exception]
unsafe fn HardFault(frame: &cortex_m_rt::ExceptionFrame) -> ! {
    crate::fail(format_args!("hard fault at pc {:#010x}", frame.pc()))
}

/// Bytes of static RAM (`.data`, `.bss`, `.uninit`) and of flash (vector table, code,
/// read-only data and the initial values of `.data`), from cortex-m-rt's linker symbols.
#[allow(unsafe_code)] // declares linker symbols; only their addresses are taken
pub fn static_sizes() -> (usize, usize) {
    extern "C" {
        static _ram_start: u32;
        static _stack_end: u32;
        static __vector_table: u32;
        static __sidata: u32;
        static __sdata: u32;
        static __edata: u32;
    }
    let addr = |p: *const u32| p as usize;
    let ram = addr(core::ptr::addr_of!(_stack_end)) - addr(core::ptr::addr_of!(_ram_start));
    let data = addr(core::ptr::addr_of!(__edata)) - addr(core::ptr::addr_of!(__sdata));
    let flash =
        addr(core::ptr::addr_of!(__sidata)) + data - addr(core::ptr::addr_of!(__vector_table));
    (ram, flash)
}
