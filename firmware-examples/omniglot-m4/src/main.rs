//! Omniglot 5-way 5-shot on a Cortex-M4F with 128 KB of RAM, under QEMU (netduinoplus2, an
//! STM32F405): after the kernel checks (dense and convolution), the f16 init stays in flash,
//! the head adapts on the frozen body's support features, every query image is classified.
//! Prints the query accuracy and the cost
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
mod firmware {
    use anole_omniglot_m4::{Parts, HEAD_PARAMS, REGION_A, REGION_B};
    use board::cortex::{instructions_per_tick, static_sizes, SysTickClock};
    use board::{fail, println};
    use cortex_m_rt::entry;

    /// Guest instructions per SysTick tick under `-icount shift=0`: 10⁹ / the core clock,
    /// 168 MHz on the netduinoplus2 (125/21), 25 MHz on mps2-an386 (40).
    #[cfg(not(feature = "mps2-an386"))]
    const PER_TICK: (u64, u64) = instructions_per_tick(168_000_000);
    #[cfg(feature = "mps2-an386")]
    const PER_TICK: (u64, u64) = instructions_per_tick(25_000_000);

    #[cfg(not(feature = "mps2-an386"))]
    const MACHINE: &str = "Cortex-M4F, QEMU netduinoplus2 (STM32F405: 1 MB flash, 128 KB SRAM)";
    #[cfg(feature = "mps2-an386")]
    const MACHINE: &str = "Cortex-M4F, QEMU mps2-an386 (4 MB RAM)";

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
        let mut clock =
            SysTickClock::<{ PER_TICK.0 }, { PER_TICK.1 }>::start(cp.SYST, "instructions");
        println!("anole Omniglot on {}", MACHINE);
        board::check_kernels(REGION_A_RAM);
        board::check_conv_kernels(REGION_A_RAM);
        let Some(costs) = board::conv_costs(REGION_A_RAM, &mut clock) else {
            fail(format_args!(
                "the convolution costs need more scratch than region A"
            ));
        };
        for c in costs {
            let (cin, cout, h, w) = c.shape;
            let per_mac = |count: u64| {
                let hundredths = count * 100 / c.macs as u64;
                (hundredths / 100, hundredths % 100)
            };
            let (f, i, g) = (
                per_mac(c.forward),
                per_mac(c.input_grad),
                per_mac(c.weight_grad),
            );
            println!(
                "conv_cost={}x{}x{}->{}: {} MACs, per MAC: forward {}.{:02}, input gradient {}.{:02}, weight gradient {}.{:02}",
                cin, h, w, cout, c.macs, f.0, f.1, i.0, i.1, g.0, g.1
            );
        }
        let report =
            match anole_omniglot_m4::run(PARTS, REGION_A_RAM, REGION_B_RAM, SAVED_HEAD, &mut clock)
            {
                Ok(r) => r,
                Err(e) => fail(format_args!("{e}")),
            };
        println!("{}", report);
        board::check_stack();
        let (ram, flash) = static_sizes();
        println!("static_ram={}", ram);
        println!("flash={}", flash);
        if !report.above_chance() {
            fail(format_args!(
                "query accuracy {}/{} is not above chance (1/{})",
                report.correct, report.queries, report.ways
            ));
        }
        println!(
            "ok: {}/{} queries right, chance is 1/{}",
            report.correct, report.queries, report.ways
        );
        board::exit(true)
    }
}
