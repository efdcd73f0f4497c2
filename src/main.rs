//! The `masq` command line. It parses, validates and calls the library crates; nothing else.

use std::process::ExitCode;

use clap::Parser;

mod cli;
// The charts of `masq demo`, which needs the trainer.
#[cfg(feature = "train")]
mod plot;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
