//! `connhealth`: puts connhealth in front of a person.
//!
//! * `connhealth demo` starts loopback servers and shows each capability at work.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;

#[derive(Debug, Parser)]
#[command(
    name = "connhealth",
    version,
    about = "Is this connection, or this endpoint, alive? Ask the kernel."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start loopback servers and show every capability at work, in a few seconds.
    Demo,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo => match demo::run() {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("connhealth demo: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
