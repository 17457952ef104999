//! # connhealth-watch: a health-check daemon for fleets of TCP endpoints
//!
//! The engine behind `connhealth watch`. Data flows one way, one module per stage, each
//! importing only the stages before it:
//!
//! * [`config`]: TOML and file_sd in, a validated [`config::Plan`] out, every error with
//!   its file, line and column; each check kind's own settings in `config/kinds`;
//! * [`checks`]: one module per check kind, what a check reports, and what a kind keeps
//!   between checks;
//! * [`state`]: HAProxy's rise/fall state machine, counters and transitions, per target;
//! * [`store`]: `--data-dir`'s SQLite file, where the history, each target's last
//!   state, silences and undelivered alerts outlive the process;
//! * [`sinks`]: the one seam every result goes through, to the target's state, then to
//!   the log and any other sink on threads of their own; [`sinks::metrics`] and
//!   [`sinks::status`] render the state at request time;
//! * [`schedule`]: due times, jitter and intervals by state, and the loop that starts each
//!   check on time and hands half-open and connect probes to the library's
//!   [`connhealth::Prober`] in batches;
//! * [`reload`]: a new config read and swapped in, keeping each unchanged target's state;
//! * [`http`]: the HTTP server, which only reads the state;
//! * [`daemon`]: the wiring, which nothing imports; under systemd it tells the service
//!   manager what it does through [`notify`], a leaf.

#![deny(missing_docs, missing_debug_implementations)]
#![warn(rust_2018_idioms, unreachable_pub)]

// The stages, in the order data flows: each imports only those above it.
pub mod checks;
pub mod config;
pub mod daemon;
pub mod http;
pub mod reload;
pub mod schedule;
pub mod sinks;
pub mod state;
pub mod store;

// Leaves, which import no stage.
mod human;
pub mod notify;
pub mod shard;
mod sys;

#[doc(hidden)]
pub mod fuzzing;

pub use crate::config::{LogFormat, Options};
pub use crate::daemon::run;
