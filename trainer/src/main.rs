//! `anole`: meta-train, evaluate, adapt, inspect and convert few-shot initializations.

use clap::Parser;

fn main() {
    let cli = anole_trainer::cli::Cli::parse();
    if let Err(e) = anole_trainer::cli::run(cli) {
        // One line: what failed and where (file, row), then the cause chain.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
