//! `connhealth`: puts connhealth in front of a person.
//!
//! * `connhealth demo` starts loopback servers and shows each capability at work.
//! * `connhealth probe TARGET...` probes endpoints half-open.
//! * `connhealth watch --config FILE` runs the health-check daemon (Unix only: a Windows
//!   build says so and exits 2).
//! * `connhealth generate --out DIR` (hidden) writes the man pages and shell completions,
//!   from this clap definition, for the Debian package (`scripts/package`).
//!
//! `--version` (of the command and each subcommand) names the git revision it was built
//! from (`build.rs`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod demo;
mod generate;
mod probe;
// The daemon is Unix's; elsewhere `watch` is a stub that says so (see that file for why it
// stays a subcommand rather than going away).
#[cfg(unix)]
mod watch;
#[cfg(not(unix))]
#[path = "watch_elsewhere.rs"]
mod watch;

/// `--version`: the crate's version and the git revision it was built from, `-dirty` when
/// the checkout had changes, `unknown` outside one (`build.rs`).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (git ",
    env!("CONNHEALTH_GIT_REVISION"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "connhealth",
    version = VERSION,
    propagate_version = true,
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
    #[cfg_attr(
        windows,
        command(
            about = "Probe TCP endpoints: is something listening? (On Windows a half-open probe \
                     completes the handshake and resets it.) Exit 0 all up, 1 any down, 2 bad usage"
        )
    )]
    Probe(probe::Args),
    /// Watch a fleet of endpoints: a health-check daemon with Prometheus metrics, a
    /// blackbox-compatible /probe and reload that keeps state.
    // Not on Unix, `watch` stays listed (src/watch_elsewhere.rs says why) with this help.
    #[cfg_attr(
        not(unix),
        command(
            about = "Watch a fleet of endpoints (the health-check daemon): runs on Linux and \
                     other Unix only, not in this build"
        )
    )]
    Watch(watch::Args),
    /// The demo's server process (listens on 127.0.0.1:PORT and holds connections).
    #[cfg(unix)]
    #[command(hide = true)]
    DemoServer {
        /// The port on 127.0.0.1.
        port: u16,
    },
    /// Write the man pages and shell completions (bash, zsh, fish) into a folder.
    #[command(hide = true)]
    Generate(generate::Args),
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
        Command::Generate(args) => generate::run(args),
        #[cfg(unix)]
        Command::DemoServer { port } => match demo::watch::serve(port) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("connhealth demo-server: {err}");
                ExitCode::FAILURE
            }
        },
    }
}
