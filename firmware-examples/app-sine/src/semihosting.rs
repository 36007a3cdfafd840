//! The demo as a whole firmware that prints through semihosting: the kernel check, the demo,
//! its report, the peak stack and the verdict, then the exit status (0 when adapting lowered
//! the held-out loss and the stack stayed inside RAM).

use crate::{Clock, Decimal, Report};
use board::{fail, println};

/// Run the firmware on `core` (its name for the first line) with `arena` (at least
/// [`crate::ARENA_LEN`] f32) and `clock`, and end the program with its verdict.
pub fn run_printed(core: &str, arena: &mut [f32], clock: &mut impl Clock) -> ! {
    println!("anole sine demo on {}", core);
    board::check_kernels(arena);
    let report: Report = match crate::run(arena, clock) {
        Ok(r) => r,
        Err(e) => fail(format_args!("{e}")),
    };
    println!("{}", report);
    board::check_stack();
    if !report.improved() {
        fail(format_args!(
            "adapting did not lower the held-out loss ({} -> {})",
            Decimal(report.loss_before),
            Decimal(report.loss_after)
        ));
    }
    println!(
        "ok: held-out loss fell from {} to {}",
        Decimal(report.loss_before),
        Decimal(report.loss_after)
    );
    board::exit(true)
}
