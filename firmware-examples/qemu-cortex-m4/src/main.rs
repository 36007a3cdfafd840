//! The anole sine demo on a Cortex-M4F under QEMU (mps2-an386; built for Armv6-M it runs on
//! mps2-an385, for Armv8-M on mps2-an505's Cortex-M33): parse the embedded meta-learned blob,
//! draw a new sine task, adapt on 10 samples, print the held-out loss before and after and the
//! cost (instructions per step and per prediction, peak stack) over semihosting. Exits 0 when
//! adapting lowered the loss, 1 otherwise or on any error.
#![no_std]
#![no_main]

use board::cortex::{instructions_per_tick, SysTickClock};
use cortex_m_rt::entry;

/// Guest instructions per SysTick tick under `-icount shift=0`: 10⁹ / the core clock, 25 MHz
/// on mps2-an386 and mps2-an385 (40), 20 MHz on mps2-an505 (50).
#[cfg(not(mps2_an505))]
const PER_TICK: (u64, u64) = instructions_per_tick(25_000_000);
#[cfg(mps2_an505)]
const PER_TICK: (u64, u64) = instructions_per_tick(20_000_000);

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
    if cfg!(mps2_an505) {
        "Cortex-M33 (QEMU mps2-an505)"
    } else if cfg!(target_abi = "eabihf") {
        "Cortex-M4F (QEMU mps2-an386)"
    } else {
        "Armv6-M code for a Cortex-M0+ (QEMU mps2-an385's Cortex-M3 runs it)"
    }
}
