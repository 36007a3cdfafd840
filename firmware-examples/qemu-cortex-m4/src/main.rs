//! The anole sine demo on a Cortex-M4F under QEMU (mps2-an386): parse the embedded
//! meta-learned blob, draw a new sine task, adapt on 10 samples, print the held-out loss before
//! and after and the cost (instructions per step and per prediction, peak stack) over
//! semihosting. Exits 0 when adapting lowered the loss, 1 otherwise or on any error.
#![no_std]
#![no_main]

use board::cortex::{instructions_per_tick, SysTickClock};
use cortex_m_rt::entry;

/// Guest instructions per SysTick tick: 10⁹ / 25 MHz = 40 under `-icount shift=0`, the MPS2
/// boards' core clock.
const PER_TICK: (u64, u64) = instructions_per_tick(25_000_000);

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` that only `main` can reach.
    static mut ARENA: [f32; app_sine::ARENA_LEN] = [0.0; app_sine::ARENA_LEN];

    let Some(cp) = cortex_m::Peripherals::take() else {
        board::fail(format_args!("core peripherals already taken"));
    };
    let mut clock = SysTickClock::<{ PER_TICK.0 }, { PER_TICK.1 }>::start(cp.SYST, "instructions");
    app_sine::semihosting::run_printed(core_name(), ARENA, &mut clock)
}

fn core_name() -> &'static str {
    if cfg!(target_abi = "eabihf") {
        "Cortex-M4F (QEMU mps2-an386)"
    } else {
        "Armv6-M code for a Cortex-M0+ (QEMU mps2-an385's Cortex-M3 runs it)"
    }
}
