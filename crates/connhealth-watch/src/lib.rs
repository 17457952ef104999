//! # connhealth-watch: a health-check daemon for fleets of TCP endpoints
//!
//! The engine behind `connhealth watch`. Data flows one way, one module per stage:
//!
//! * [`config`]: TOML and file_sd in, a validated [`config::Plan`] out, every error with
//!   its file, line and column;
//! * [`schedule`]: due times, jitter and intervals by state, and the loop that starts each
//!   check on time and hands half-open and connect probes to the library's
//!   [`connhealth::Prober`] in batches;
//! * [`checks`]: one module per check kind, and what a check reports;
//! * [`state`]: HAProxy's rise/fall state machine, counters and transitions;
//! * the sinks: [`metrics`] (rendered at scrape time from per-target counters),
//!   [`status`] (`/status` JSON) and the log line of each transition;
//! * [`http`]: the HTTP server, which only reads the state; [`daemon`] wires the stages
//!   together, and reloads by building a new plan and swapping it in.

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

// Leaves, which import no stage.
mod human;
pub mod shard;
mod sys;

#[doc(hidden)]
pub mod fuzzing;

pub use crate::config::{LogFormat, Options};
pub use crate::daemon::run;
