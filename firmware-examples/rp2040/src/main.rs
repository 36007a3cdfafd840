//! The anole sine demo on an RP2040 board (Cortex-M0+, no FPU): parse the embedded
//! meta-learned blob, draw a new sine task, adapt on 10 samples, log the held-out loss before
//! and after and the cost (core cycles per step and per prediction, peak stack) with defmt.
//! Ends with a semihosting exit, so `probe-rs run` returns 0 when adapting lowered the loss.
#![no_std]
#![no_main]

use board::cortex::Cycles;
use cortex_m_rt::entry;

/// Second-stage bootloader for the W25Q080 flash of the Raspberry Pi Pico (and most boards);
/// the boot ROM runs it to set up execute-in-place before jumping to the program.
#[link_section = ".boot2"]
#[used]
pub static BOOT2: [u8; 256] = rp2040_boot2::BOOT_LOADER_W25Q080;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` that only `main` can reach.
    static mut ARENA: [f32; app_sine::ARENA_LEN] = [0.0; app_sine::ARENA_LEN];

    let Some(cp) = cortex_m::Peripherals::take() else {
        board::fail(format_args!("core peripherals already taken"));
    };
    // SysTick on the core clock: one tick is one cycle (of the ring oscillator the chip boots
    // on; without clock setup wall time varies, cycle counts do not).
    let mut clock = Cycles::start(cp.SYST, "cycles");
    app_sine::defmt_log::run_logged("RP2040 (Cortex-M0+)", ARENA, &mut clock)
}
