//! [`ProberBuilder`] and [`Mode`].

use crate::sync::Arc;

use super::engine::Config;
use super::handle::EngineHandle;
use super::{Inner, Prober};
use crate::DeadPeer;

/// How a probe ends once the target answers the SYN.
///
/// ```
/// use connhealth::{Mode, Prober};
/// let prober = Prober::builder().mode(Mode::Connect).build();
/// # drop(prober);
/// ```
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// SYN, SYN-ACK, RST: the handshake is never completed, so the server application
    /// never sees a connection (nothing in its accept queue, its logs or its connection
    /// count) and no TIME_WAIT is left behind.
    ///
    /// On Linux the probe socket has TCP_QUICKACK off, so the kernel delays its ACK of
    /// the SYN-ACK (by ~40-200 ms), and the engine closes it with a zero linger as soon
    /// as the SYN-ACK arrives, which sends an RST instead. Other systems have no
    /// TCP_QUICKACK: there the kernel ACKs at once and `HalfOpen` behaves exactly like
    /// [`Mode::Connect`].
    #[default]
    HalfOpen,
    /// SYN, SYN-ACK, ACK, then RST: the handshake completes and is reset at once. The
    /// server's `accept()` returns the connection (already reset). Use it for servers
    /// behind a SYN proxy or SYN cookies in front of the real listener, where a SYN-ACK
    /// proves only that the proxy is up.
    Connect,
}

/// Builds a [`Prober`]; see [`Prober::builder`].
///
/// ```
/// use connhealth::{Mode, Prober};
/// let prober = Prober::builder()
///     .mode(Mode::HalfOpen)
///     .max_in_flight(256)
///     .max_in_flight_per_destination(16)
///     .build();
/// # drop(prober);
/// ```
#[derive(Debug, Clone)]
pub struct ProberBuilder {
    mode: Mode,
    max_in_flight: usize,
    max_in_flight_per_destination: usize,
    dead_peer: Option<DeadPeer>,
}

impl Default for ProberBuilder {
    fn default() -> Self {
        ProberBuilder {
            mode: Mode::HalfOpen,
            // Each probe in flight holds a descriptor; 512 leaves room under the common
            // soft limit of 1024 and is far above what one core needs for full speed
            // on loopback (128 saturates it).
            max_in_flight: 512,
            // Below the smallest listen backlog in common use (128, the old somaxconn),
            // so a probe burst never fills one listener's SYN queue.
            max_in_flight_per_destination: 64,
            dead_peer: None,
        }
    }
}

impl ProberBuilder {
    /// How probes end: [`Mode::HalfOpen`] (the default) or [`Mode::Connect`].
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The most probes in flight at once, across all destinations (default 512, at
    /// least 1). More are queued, not refused. Each one in flight holds a descriptor.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// The most probes in flight at once to one address (default 64, at least 1). Many
    /// SYNs in flight to one listener overflow its SYN backlog, which drops them (or
    /// answers with cookies), and the probes would measure the backlog, not the server.
    pub fn max_in_flight_per_destination(mut self, max: usize) -> Self {
        self.max_in_flight_per_destination = max.max(1);
        self
    }

    /// Holds every probe to the same bound as a [`DeadPeer`] policy: a target that has not
    /// answered within `policy.bound()` is down (`TimedOut`), whatever longer timeout a
    /// call passes. Use the policy you give `TcpManager::dead_peer`, so that a health
    /// checker and the pool behind it agree on how long "silent" may last.
    ///
    /// ```
    /// use std::time::Duration;
    /// use connhealth::{DeadPeer, Prober};
    ///
    /// let policy = DeadPeer::detect_within(Duration::from_secs(3));
    /// let prober = Prober::builder().dead_peer(policy).build();
    /// assert_eq!(prober.bounded(Duration::from_secs(30)), Duration::from_secs(3));
    /// assert_eq!(prober.bounded(Duration::from_secs(1)), Duration::from_secs(1));
    /// ```
    pub fn dead_peer(mut self, policy: DeadPeer) -> Self {
        self.dead_peer = Some(policy);
        self
    }

    /// Starts the prober's engine thread and returns the prober.
    ///
    /// The engine thread is spawned from the calling thread and inherits its network
    /// namespace: every probe socket lives in the namespace of the thread that built the
    /// prober. If the thread or its epoll instance cannot be created (no descriptors,
    /// no threads left), the prober is still returned, and each probe reports the error.
    pub fn build(self) -> Prober {
        let engine = EngineHandle::start(Config {
            mode: self.mode,
            max_in_flight: self.max_in_flight,
            max_in_flight_per_destination: self.max_in_flight_per_destination,
        })
        .map_err(|err| {
            tracing::error!(%err, "connhealth: cannot start the probe engine");
            err.to_string()
        });
        Prober {
            inner: Arc::new(Inner {
                engine,
                mode: self.mode,
                max_in_flight: self.max_in_flight,
                dead_peer: self.dead_peer,
            }),
        }
    }
}
