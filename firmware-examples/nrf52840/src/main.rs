//! The anole sine demo on an nRF52840 board: parse the embedded meta-learned blob, draw a new
//! sine task, adapt on 10 samples, log the held-out loss before and after and the cost (core
//! cycles per step and per prediction at 64 MHz, peak stack) with defmt. Ends with a
//! semihosting exit, so `probe-rs run` returns 0 when adapting lowered the loss.
#![no_std]
#![no_main]

use board::cortex::Cycles;
use cortex_m_rt::entry;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` that only `main` can reach.
    static mut ARENA: [f32; app_sine::ARENA_LEN] = [0.0; app_sine::ARENA_LEN];

    let Some(cp) = cortex_m::Peripherals::take() else {
        board::fail(format_args!("core peripherals already taken"));
    };
    // SysTick on the core clock: one tick is one cycle.
    let mut clock = Cycles::start(cp.SYST, "cycles");
    app_sine::defmt_log::run_logged("nRF52840 (Cortex-M4F)", ARENA, &mut clock)
}
