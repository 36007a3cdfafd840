//! The demo as a whole firmware that logs with defmt through a debug probe: the kernel check,
//! the demo, its report, the peak stack and the verdict, then the exit status through
//! semihosting (0 when adapting lowered the held-out loss and the stack stayed inside RAM).

use crate::{Clock, DemoError, Report, HELD_OUT, SUPPORT};

/// Run the firmware on the board called `name` (for the first line) with `arena` (at least
/// [`crate::ARENA_LEN`] f32) and `clock`, and end the program with its verdict.
pub fn run_logged(name: &str, arena: &mut [f32], clock: &mut impl Clock) -> ! {
    board::exit(logged(name, arena, clock))
}

fn logged(name: &str, arena: &mut [f32], clock: &mut impl Clock) -> bool {
    defmt::info!("anole sine demo on {=str}", name);
    if let Err(e) = board::kernel_check(arena) {
        defmt::error!("kernel check: {}", e);
        return false;
    }
    defmt::info!("kernel_check=ok");
    let report = match crate::run(arena, clock) {
        Ok(r) => r,
        Err(e) => {
            log_error(&e);
            return false;
        }
    };
    log_report(&report);
    let stack = board::stack::usage();
    defmt::info!("peak_stack={=usize}", stack.peak);
    defmt::info!("stack_available={=usize}", stack.size);
    if stack.exhausted() {
        defmt::error!("the stack used all {=usize} bytes left in RAM", stack.size);
        return false;
    }
    if !report.improved() {
        defmt::error!(
            "adapting did not lower the held-out loss ({=f32} -> {=f32})",
            report.loss_before,
            report.loss_after
        );
        return false;
    }
    defmt::info!(
        "ok: held-out loss fell from {=f32} to {=f32}",
        report.loss_before,
        report.loss_after
    );
    true
}

/// Log every line of `r` (the same keys as its `Display`).
pub fn log_report(r: &Report) {
    defmt::info!(
        "model: {=str} ({=u64} meta-iterations), {=usize} parameters, arena {=usize} f32 ({=usize} bytes) at batch {=usize}",
        r.algorithm,
        r.meta_iterations,
        r.params,
        r.arena_len,
        r.arena_len * 4,
        r.batch
    );
    defmt::info!(
        "task: y = {=f32} sin(x + {=f32}); {=usize} support points, {=usize} held-out points",
        r.task.amplitude,
        r.task.phase,
        SUPPORT,
        HELD_OUT
    );
    defmt::info!(
        "adapt: {=u32} SGD steps at lr {=f32}, support loss {=f32} -> {=f32}",
        r.steps,
        r.lr,
        r.support_first,
        r.support_last
    );
    defmt::info!("loss_before={=f32}", r.loss_before);
    defmt::info!("loss_after={=f32}", r.loss_after);
    defmt::info!("cost_unit={=str}", r.unit);
    defmt::info!("per_step={=u64}", r.per_step());
    defmt::info!("per_prediction={=u64}", r.per_prediction());
    defmt::info!("macs_per_step={=u64}", r.macs_per_step);
    defmt::info!(
        "per_mac={=u64}.{=u64:02}",
        r.per_mac_x100() / 100,
        r.per_mac_x100() % 100
    );
}

/// Log a demo error with its `Display` text.
pub fn log_error(e: &DemoError) {
    defmt::error!("{}", defmt::Display2Format(e));
}
