//! Omniglot 5-way 5-shot on a Cortex-M4F with 128 KB of RAM, under QEMU (netduinoplus2, an
//! STM32F405): the f16 init stays in flash, the head adapts on the frozen body's support
//! features, every query image is classified. Prints the query accuracy and the cost
//! (instructions per adaptation step, per support image's features and per prediction, peak
//! stack, static RAM and flash) over semihosting; exits 0 when the accuracy is above chance.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("anole-omniglot-m4 is firmware: build it for thumbv7em-none-eabihf (cargo run --release in its folder)");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod board {
    use anole_omniglot_m4::{Parts, HEAD_PARAMS, REGION_A, REGION_B};
    use app_sine::cortex_m_probe::{on_systick, stack_usage, SysTickClock};
    use app_sine::Clock;
    use cortex_m_rt::{entry, exception, ExceptionFrame};
    use cortex_m_semihosting::{debug, hprintln};

    /// Guest instructions per SysTick tick, as a fraction: one instruction per ns under
    /// `-icount shift=0`, and the core clock is 168 MHz on the netduinoplus2 (125/21 ns per
    /// tick), 25 MHz on mps2-an386 (40 ns).
    #[cfg(not(feature = "mps2-an386"))]
    const PER_TICK: (u64, u64) = (125, 21);
    #[cfg(feature = "mps2-an386")]
    const PER_TICK: (u64, u64) = (40, 1);

    #[cfg(not(feature = "mps2-an386"))]
    const MACHINE: &str = "Cortex-M4F, QEMU netduinoplus2 (STM32F405: 1 MB flash, 128 KB SRAM)";
    #[cfg(feature = "mps2-an386")]
    const MACHINE: &str = "Cortex-M4F, QEMU mps2-an386 (4 MB RAM)";

    struct Instructions(SysTickClock);

    impl Clock for Instructions {
        fn now(&mut self) -> u64 {
            self.0.ticks() * PER_TICK.0 / PER_TICK.1
        }
        fn unit(&self) -> &'static str {
            "instructions"
        }
    }

    /// Bytes of static RAM (`.data`, `.bss`, `.uninit`) and of flash (vector table, code,
    /// read-only data and the initial values of `.data`), from the linker's symbols.
    #[allow(unsafe_code)]
    fn static_sizes() -> (usize, usize) {
        extern "C" {
            static _ram_start: u32;
            static _stack_end: u32;
            static _anole_flash_start: u32;
            static __sidata: u32;
            static __sdata: u32;
            static __edata: u32;
        }
        // Only the addresses of these linker symbols are taken; nothing is read.
        let addr = |p: *const u32| p as usize;
        let ram = addr(core::ptr::addr_of!(_stack_end)) - addr(core::ptr::addr_of!(_ram_start));
        let data = addr(core::ptr::addr_of!(__edata)) - addr(core::ptr::addr_of!(__sdata));
        let flash = addr(core::ptr::addr_of!(__sidata)) + data
            - addr(core::ptr::addr_of!(_anole_flash_start));
        (ram, flash)
    }

    #[entry]
    fn main() -> ! {
        // cortex-m-rt turns these into `&'static mut` that only `main` can reach.
        static mut REGION_A_RAM: [f32; REGION_A] = [0.0; REGION_A];
        static mut REGION_B_RAM: [f32; REGION_B] = [0.0; REGION_B];
        static mut SAVED_HEAD: [f32; HEAD_PARAMS] = [0.0; HEAD_PARAMS];
        static mut PARTS: Parts<'static> = Parts::new();

        let Some(cp) = cortex_m::Peripherals::take() else {
            fail(format_args!("core peripherals already taken"));
        };
        let mut clock = Instructions(SysTickClock::start(cp.SYST, 1, "ticks"));
        hprintln!("anole Omniglot on {}", MACHINE);
        let report =
            match anole_omniglot_m4::run(PARTS, REGION_A_RAM, REGION_B_RAM, SAVED_HEAD, &mut clock)
            {
                Ok(r) => r,
                Err(e) => fail(format_args!("{e}")),
            };
        hprintln!("{}", report);
        let stack = stack_usage();
        let (ram, flash) = static_sizes();
        hprintln!("peak_stack={}", stack.peak);
        hprintln!("stack_available={}", stack.size);
        hprintln!("static_ram={}", ram);
        hprintln!("flash={}", flash);
        if stack.exhausted() {
            fail(format_args!(
                "the stack used all {} bytes left in RAM",
                stack.size
            ));
        }
        if !report.above_chance() {
            fail(format_args!(
                "query accuracy {}/{} is not above chance (1/{})",
                report.correct, report.queries, report.ways
            ));
        }
        hprintln!(
            "ok: {}/{} queries right, chance is 1/{}",
            report.correct,
            report.queries,
            report.ways
        );
        exit(true)
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
}
