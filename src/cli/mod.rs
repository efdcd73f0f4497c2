//! Subcommands, one file each.

use clap::{Parser, Subcommand};

/// masq: train few-ReLU networks, export them, and run them under two-party secure computation.
#[derive(Debug, Parser)]
#[command(name = "masq", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {}
}
