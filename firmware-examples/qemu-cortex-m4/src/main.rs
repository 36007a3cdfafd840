//! The anole sine demo on a Cortex-M4F under QEMU (mps2-an386): parse the embedded
//! meta-learned blob, draw a new sine task, adapt on 10 samples, print the held-out loss before
//! and after and the cost (instructions per step and per prediction, peak stack) over
//! semihosting. Exits 0 when adapting lowered the loss, 1 otherwise or on any error.
#![no_std]
#![no_main]

use app_sine::cortex_m_probe::{on_systick, stack_usage, SysTickClock};
use cortex_m_rt::{entry, exception, ExceptionFrame};
use cortex_m_semihosting::{debug, hprintln};

/// Guest instructions per SysTick tick: MPS2's 25 MHz core clock at 1 instruction per ns
/// (`-icount shift=0`).
const INSTRUCTIONS_PER_TICK: u64 = 40;

#[entry]
fn main() -> ! {
    // cortex-m-rt turns this into a `&'static mut` that only `main` can reach.
    static mut ARENA: [f32; app_sine::ARENA_LEN] = [0.0; app_sine::ARENA_LEN];

    let Some(cp) = cortex_m::Peripherals::take() else {
        fail(format_args!("core peripherals already taken"));
    };
    let mut clock = SysTickClock::start(cp.SYST, INSTRUCTIONS_PER_TICK, "instructions");
    hprintln!("anole sine demo on {}", core_name());
    if let Err(e) = app_sine::kernel_check() {
        fail(format_args!("kernel check: {e}"));
    }
    hprintln!("kernel_check=ok");
    let report = match app_sine::run(ARENA, &mut clock) {
        Ok(r) => r,
        Err(e) => fail(format_args!("{e}")),
    };
    hprintln!("{}", report);
    let stack = stack_usage();
    hprintln!("peak_stack={}", stack.peak);
    hprintln!("stack_available={}", stack.size);
    if stack.exhausted() {
        fail(format_args!(
            "the stack used all {} bytes left in RAM",
            stack.size
        ));
    }
    if !report.improved() {
        fail(format_args!(
            "adapting did not lower the held-out loss ({} -> {})",
            report.loss_before, report.loss_after
        ));
    }
    hprintln!(
        "ok: held-out loss fell from {} to {}",
        report.loss_before,
        report.loss_after
    );
    exit(true)
}

fn core_name() -> &'static str {
    if cfg!(target_abi = "eabihf") {
        "Cortex-M4F (QEMU mps2-an386)"
    } else {
        "Armv6-M code for a Cortex-M0+ (QEMU mps2-an385's Cortex-M3 runs it)"
    }
}

fn fail(why: core::fmt::Arguments<'_>) -> ! {
    hprintln!("error: {}", why);
    exit(false)
}

/// End the emulation with QEMU's exit status 0 (success) or 1.
fn exit(success: bool) -> ! {
    debug::exit(if success {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[exception]
fn SysTick() {
    on_systick();
}

#[exception]
unsafe fn HardFault(frame: &ExceptionFrame) -> ! {
    fail(format_args!("hard fault at pc {:#010x}", frame.pc()))
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    fail(format_args!("panic: {info}"))
}
