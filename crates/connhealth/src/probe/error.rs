//! [`ProbeError`]: why a probe did not find the endpoint alive.

use std::io;

use crate::sys::probe::classify;
use crate::sys::Failure;

/// Why a probe did not find the endpoint alive.
///
/// The variants separate the target's answer ([`Refused`](ProbeError::Refused),
/// [`TimedOut`](ProbeError::TimedOut), [`Unreachable`](ProbeError::Unreachable)) from
/// problems on the probing side ([`Resolve`](ProbeError::Resolve),
/// [`Exhausted`](ProbeError::Exhausted), [`InvalidTarget`](ProbeError::InvalidTarget)),
/// so that a health checker does not mark a backend down because it ran out of
/// descriptors itself.
///
/// ```
/// use connhealth::ProbeError;
/// assert!(ProbeError::Refused.is_down());
/// assert!(!ProbeError::Exhausted(std::io::Error::other("EMFILE")).is_down());
/// ```
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The target answered the SYN with an RST: the host is up, nothing listens on the
    /// port (`ECONNREFUSED`).
    #[error("connection refused: nothing listens on the port")]
    Refused,
    /// No SYN-ACK before the timeout: the SYNs were dropped, or the host is gone.
    #[error("no answer before the timeout")]
    TimedOut,
    /// There is no route to the target, or an ICMP unreachable came back
    /// (`ENETUNREACH`, `EHOSTUNREACH`).
    #[error("target unreachable: {0}")]
    Unreachable(#[source] io::Error),
    /// The host name did not resolve, or did not resolve before the timeout.
    #[error("cannot resolve the target: {0}")]
    Resolve(#[source] io::Error),
    /// Local resources ran out: descriptors (`EMFILE`, `ENFILE`), local ports
    /// (`EADDRNOTAVAIL`) or socket buffers (`ENOBUFS`), or the prober's own limits
    /// (`max_in_flight`, `max_in_flight_per_destination`) kept the probe waiting until its
    /// timeout. Nothing is known about the target: no SYN was sent. The prober waits for
    /// its own probes to give resources back before it reports this (for local ports, its
    /// probes to the same destination); it does so when none are in flight, or when the
    /// probe's timeout passed first.
    #[error("out of local resources, the target was not probed: {0}")]
    Exhausted(#[source] io::Error),
    /// Another error from the system.
    #[error("probe failed: {0}")]
    Io(#[source] io::Error),
    /// The target string is not `host:port`. The message says what is wrong with it.
    #[error("invalid target {target:?}: {reason}")]
    InvalidTarget {
        /// The string as given.
        target: String,
        /// What is wrong with it, and the expected form.
        reason: &'static str,
    },
}

impl ProbeError {
    /// True when the target itself answered no, or did not answer:
    /// [`Refused`](ProbeError::Refused), [`TimedOut`](ProbeError::TimedOut) or
    /// [`Unreachable`](ProbeError::Unreachable). False for errors on the probing side,
    /// which say nothing about the target.
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            ProbeError::Refused | ProbeError::TimedOut | ProbeError::Unreachable(_)
        )
    }

    /// Classifies an error from `socket()`, `connect()` or the socket's pending error.
    pub(crate) fn from_connect(err: io::Error) -> ProbeError {
        match classify(&err) {
            Failure::Refused => ProbeError::Refused,
            Failure::TimedOut => ProbeError::TimedOut,
            Failure::Unreachable => ProbeError::Unreachable(err),
            Failure::Exhausted | Failure::DestinationExhausted => ProbeError::Exhausted(err),
            Failure::Other => ProbeError::Io(err),
        }
    }

    /// The probe's timeout passed before it was sent, for the reason given: the
    /// prober's own limits kept it waiting. Nothing is known about the target.
    pub(crate) fn not_sent(why: String) -> ProbeError {
        ProbeError::Exhausted(io::Error::new(io::ErrorKind::TimedOut, why))
    }

    /// The engine thread is gone (it could not start, or it stopped on an error).
    pub(crate) fn engine_stopped(why: &str) -> ProbeError {
        ProbeError::Io(io::Error::other(format!(
            "the probe engine is not running: {why}"
        )))
    }
}
