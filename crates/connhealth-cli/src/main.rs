//! `connhealth`: puts connhealth in front of a person.
//!
//! * `connhealth demo` starts loopback servers and shows each capability at work.
//! * `connhealth probe TARGET...` probes endpoints half-open.
//! * `connhealth watch --config FILE` runs the health-check daemon.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod probe;
mod watch;

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
    /// Probe TCP endpoints half-open: is something listening? Exit 0 all up, 1 any down, 2 bad usage.
    Probe(probe::Args),
    /// Watch a fleet of endpoints: a health-check daemon with Prometheus metrics, a
    /// blackbox-compatible /probe and reload that keeps state.
    Watch(watch::Args),
    /// The demo's server process (listens on 127.0.0.1:PORT and holds connections).
    #[command(hide = true)]
    DemoServer {
        /// The port on 127.0.0.1.
        port: u16,
    },
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
        Command::Probe(args) => probe::run(args),
        Command::Watch(args) => watch::run(args),
        Command::DemoServer { port } => match demo::watch::serve(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("connhealth demo-server: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
