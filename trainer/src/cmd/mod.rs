//! One module per subcommand: its clap arguments and its `run`.

pub mod adapt;
pub mod eval;
pub mod import;
pub mod inspect;
pub mod predict;
pub mod sign;
pub mod train;
