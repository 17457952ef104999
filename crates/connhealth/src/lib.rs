//! # connhealth: is this connection, or this endpoint, alive?
//!
//! Long-lived connections die without telling anyone. The peer closes them, resets them, or
//! vanishes, and the application finds out by failing a request, or pays a round trip and
//! server work for an application ping. The kernel already knows. connhealth asks it, at the
//! cost of a system call, and builds on the answer.
//!
//! ## Is this established connection still open?
//!
//! [`check`] asks the kernel in one `poll(2)`: no traffic, no data consumed, never blocks.
//! It sees a FIN even behind unread bytes (a TLS peer's close_notify, for example), and
//! tells a reset, a timeout and a local abort apart.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use connhealth::{check, Status};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let conn = TcpStream::connect(listener.local_addr()?)?;
//! let (peer, _) = listener.accept()?;
//! assert_eq!(check(&conn), Status::Open);
//!
//! drop(peer);
//! # std::thread::sleep(std::time::Duration::from_millis(20));
//! assert!(check(&conn).is_closed());
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! ## Is this endpoint alive?
//!
//! [`Prober`] sends a SYN, waits for the SYN-ACK, and resets the half-finished handshake:
//! the server application never sees a connection. One engine thread per prober runs
//! probes at the machine's floor, whatever runtime the caller uses. See the [`probe`]
//! module.
//!
//! ## A pool that never hands out a dead connection
//!
//! [`pool::Pool`] checks every checkout with [`check`] (no traffic), and drops an idle
//! connection within milliseconds of its peer closing it, with no `get()` needed. It has
//! all of Go's connpool features, and is faster than bb8 and deadpool uncontended.
//!
//! ## A peer that vanished silently
//!
//! [`DeadPeer::detect_within`] turns one bound into keepalive and `TCP_USER_TIMEOUT`
//! settings, so that [`check`] reports `Closed(TimedOut)` within it. [`inspect`] reads
//! `TCP_INFO` ([`Inspection::stalled`] warns early), and [`heartbeat::Heartbeat`] pings at
//! the application level, with deadlines.
//!
//! ## Platforms
//!
//! Linux is built and tested. Other Unix systems build through the portable path
//! (`poll` plus a one-byte peek), untested. Windows builds through its own path (`WSAPoll`,
//! `SIO_TCP_INFO`, `SIO_KEEPALIVE_VALS` and `TCP_MAXRT`) and is tested under Wine 8.0, not
//! on Windows itself. The API reads the same everywhere: what takes `AsFd` on Unix takes
//! `AsSocket` on Windows.

#![deny(missing_docs, missing_debug_implementations)]
#![warn(rust_2018_idioms, unreachable_pub)]

/// The README's examples, compiled and run as doc tests on Unix. (The README shows no
/// hidden lines, so it cannot step around Wine's missing `TCP_MAXRT` and `SIO_TCP_INFO`;
/// the crate's own examples run on Windows too.)
#[cfg(all(doctest, unix))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;

/// The examples of `docs/library.md`, compiled and run as doc tests on Unix, as the
/// README's are.
#[cfg(all(doctest, unix))]
#[doc = include_str!("../../../docs/library.md")]
struct LibraryDoctests;

mod check;
mod deadpeer;
pub mod heartbeat;
mod inspect;
pub mod pool;
pub mod probe;
mod sync;
mod sys;
mod util;

// liveness (issue 2)
pub use crate::check::{check, Closed, Status};
// half-open probes (issue 3)
pub use crate::probe::{Mode, ProbeEngine, ProbeError, Prober, ProberBuilder};
// dead peers (issue 5)
pub use crate::deadpeer::{DeadPeer, DeadPeerError, DeadPeerSettings};
pub use crate::inspect::{inspect, Inspection, TcpState};
