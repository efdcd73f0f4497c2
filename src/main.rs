//! The `masq` command line. It parses, validates and calls the library crates; nothing else.

use std::process::ExitCode;

use clap::Parser;

mod cli;
// Process exit: SIGPIPE and the error text (kept with the other shared CLI code, used only here).
#[path = "cli/common/exit.rs"]
mod exit;
// The charts of `masq demo`, which needs the trainer.
#[cfg(feature = "train")]
mod plot;

// Large buffers (dealer material) on transparent huge pages: fewer page faults while dealing and
// far cheaper frees (see masq_mpc::alloc).
#[global_allocator]
static ALLOC: masq_mpc::alloc::HugePages = masq_mpc::alloc::HugePages;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // A closed stdout (`masq inspect m.onnx --json | head`) ends a command quietly; the commands
    // that talk to a peer over sockets report a peer that hangs up instead.
    if !matches!(args.command, cli::Command::Serve(_) | cli::Command::Query(_) | cli::Command::Deal(_)) {
        exit::default_sigpipe();
    }
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", exit::error_text(&e));
            ExitCode::FAILURE
        }
    }
}
