//! `connhealth watch` where the daemon does not run (Windows). The daemon, the
//! `connhealth-watch` crate, is Unix's: its signals (SIGHUP, SIGTERM), descriptor limits
//! and sockets are, and this command depends on it on Unix only.
//!
//! `watch` stays a subcommand here, listed in `--help` with a note, that takes any
//! arguments and exits 2 saying where it runs and what works here: a Windows user who
//! follows the README's `connhealth watch --config ...` gets that sentence rather than
//! clap's "unrecognized subcommand", which would read like a typo or an old build.

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Args as ClapArgs;

/// What `connhealth watch` says (on stderr, exit 2) in this build.
pub(crate) const UNIX_ONLY: &str = "connhealth watch runs on Linux (and other Unix); this build \
     is for Windows. The library's probe and check work here: see `connhealth probe --help`.";

/// The health-check daemon runs on Linux and other Unix only: in this build `watch` says
/// so and exits 2.
#[derive(Debug, ClapArgs)]
#[command(after_help = UNIX_ONLY)]
pub(crate) struct Args {
    /// Whatever was given (--config FILE, ...): not read in this build.
    #[arg(
        value_name = "ARGS",
        num_args = 0..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    _args: Vec<OsString>,
}

pub(crate) fn run(_args: Args) -> ExitCode {
    eprintln!("{UNIX_ONLY}");
    ExitCode::from(2)
}
