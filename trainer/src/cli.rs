//! Command-line interface: one subcommand per module in `cmd/`.

use crate::cmd;
use clap::{Parser, Subcommand};

/// anole: meta-learned few-shot initializations for edge devices.
#[derive(Parser, Debug)]
#[command(name = "anole", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Meta-train an initialization and export init.onnx, init.postcard, card.json and plots.
    Train(cmd::train::Args),
    /// Evaluate few-shot adaptation of a model on held-out tasks.
    Eval(cmd::eval::Args),
    /// Adapt a model on support rows and predict query rows (CSV).
    Adapt(cmd::adapt::Args),
    /// Predict query rows with a model, without adapting.
    Predict(cmd::predict::Args),
    /// Show a blob's architecture, parameters, dtypes, flash bytes and arena size.
    Inspect(cmd::inspect::Args),
    /// Convert a supported ONNX model into a blob.
    Import(cmd::import::Args),
    /// Generate an ed25519 key pair for signing blobs: KEY (secret) and KEY.pub.
    Keygen(cmd::sign::KeygenArgs),
    /// Sign a blob, for devices that accept only blobs signed by a trusted key.
    Sign(cmd::sign::Args),
    /// Check a signed blob against a trusted public key.
    Verify(cmd::sign::VerifyArgs),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Train(a) => cmd::train::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Adapt(a) => cmd::adapt::run(a),
        Command::Predict(a) => cmd::predict::run(a),
        Command::Inspect(a) => cmd::inspect::run(a),
        Command::Import(a) => cmd::import::run(a),
        Command::Keygen(a) => cmd::sign::run_keygen(a),
        Command::Sign(a) => cmd::sign::run(a),
        Command::Verify(a) => cmd::sign::run_verify(a),
    }
}
