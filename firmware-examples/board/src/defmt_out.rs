//! Output through defmt over RTT (a debug probe reads it), panics through panic-probe, and
//! failure: the firmware's end still becomes `probe-rs run`'s exit status through semihosting.

use defmt_rtt as _;
use panic_probe as _;

/// Log `error: {why}` and end with exit status 1.
pub fn fail(why: core::fmt::Arguments<'_>) -> ! {
    defmt::error!("{}", defmt::Display2Format(&why));
    crate::exit(false)
}
