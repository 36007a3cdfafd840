//! One reference model on a Cortex-M4F under QEMU (mps2-an386): the blob stays in flash,
//! one pseudo-random sample is predicted, the blob's trainable layers take its SGD steps on it;
//! prints the instructions per inference and per adaptation step, the losses, the peak stack,
//! static RAM and flash over semihosting. Exits 0 when every prediction and loss is finite and
//! the loss fell, 1 otherwise or on any error.
#![cfg_attr(target_os = "none", no_std)]
#![cfg_attr(target_os = "none", no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("anole-models-m4 is firmware: build it for thumbv7em-none-eabihf (cargo run --release in its folder)");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
mod firmware {
    use anole::Blob;
    use anole_models_m4::{
        ARENA_LEN, BLOB, INPUT_LEN, MAP, MAP_FLASH, MAP_RAM, OUTPUT_LEN, TARGET_LEN,
    };
    use board::cortex::{instructions_per_tick, static_sizes, SysTickClock};
    use board::{fail, println};
    use cortex_m_rt::entry;

    /// Guest instructions per SysTick tick under `-icount shift=0`: 10⁹ / mps2-an386's 25 MHz.
    const PER_TICK: (u64, u64) = instructions_per_tick(25_000_000);

    #[entry]
    fn main() -> ! {
        // cortex-m-rt turns these into `&'static mut` that only `main` can reach.
        static mut ARENA: [f32; ARENA_LEN] = [0.0; ARENA_LEN];
        static mut X: [f32; INPUT_LEN] = [0.0; INPUT_LEN];
        static mut TARGET: [f32; TARGET_LEN] = [0.0; TARGET_LEN];
        static mut Y: [f32; OUTPUT_LEN] = [0.0; OUTPUT_LEN];
        // The parsed blob: a few KB of fixed-capacity lists, kept off the stack.
        static mut MODEL: Blob<'static> = Blob::empty();

        let Some(cp) = cortex_m::Peripherals::take() else {
            fail(format_args!("core peripherals already taken"));
        };
        let mut clock =
            SysTickClock::<{ PER_TICK.0 }, { PER_TICK.1 }>::start(cp.SYST, "instructions");
        println!("anole reference model on a Cortex-M4F, QEMU {}", MAP);
        println!("blob={} bytes", BLOB.len());
        let report = match anole_models_m4::run(MODEL, ARENA, X, TARGET, Y, &mut clock) {
            Ok(r) => r,
            Err(e) => fail(format_args!("{e}")),
        };
        println!("{}", report);
        let stack = board::check_stack();
        let (ram, flash) = static_sizes();
        println!("static_ram={}", ram);
        println!("flash={}", flash);
        println!("map_ram={}", MAP_RAM);
        println!("map_flash={}", MAP_FLASH);
        println!("ram_used={}", ram + stack.peak);
        println!(
            "ok: finite predictions and losses{}",
            if report.steps > 1 {
                ", the loss fell"
            } else {
                ""
            }
        );
        board::exit(true)
    }
}
