//! [`ProberBuilder`] and [`Mode`].

use std::ops::RangeInclusive;

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
    /// On Linux, when the process may open raw sockets (`CAP_NET_RAW`), the prober runs
    /// the raw engine ([`ProbeEngine::Raw`], see [`Mode::Raw`]): no socket per probe, and
    /// about twice the probes per core. Without the capability it logs once why, and
    /// runs the socket engine ([`ProbeEngine::Sockets`]), as it does with
    /// [`ProberBuilder::raw`]`(false)` and on every other system.
    ///
    /// With the socket engine, on Linux the probe socket has TCP_QUICKACK off, so the kernel delays its ACK of
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
    /// Half-open probes from the raw engine, or nothing: SYNs built in user space and
    /// sent in batches from one raw socket, replies read through a filter on the
    /// prober's source ports; the kernel answers each SYN-ACK with the RST, since no
    /// socket owns the port. Linux only, and only with `CAP_NET_RAW` (root has it): if
    /// the raw sockets cannot be opened, every probe fails with [`ProbeError::Io`]
    /// saying why, and [`Prober::engine`] is `None`. See the [module docs](super) for
    /// what the raw engine sends, how it tells its replies from forgeries, and the
    /// host firewall rules it needs.
    ///
    /// [`ProbeError::Io`]: super::ProbeError::Io
    /// [`Prober::engine`]: super::Prober::engine
    Raw,
}

/// Which engine runs a [`Prober`]'s probes; see [`Prober::engine`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeEngine {
    /// One raw socket for every probe: [`Mode::Raw`], or [`Mode::HalfOpen`] with
    /// `CAP_NET_RAW` on Linux.
    Raw,
    /// A socket per probe, closed as soon as its connect completes: [`Mode::Connect`],
    /// and [`Mode::HalfOpen`] without raw sockets.
    Sockets,
}

impl ProbeEngine {
    /// `"raw"` or `"sockets"`: the label a metric or a log line uses.
    ///
    /// ```
    /// assert_eq!(connhealth::ProbeEngine::Raw.as_str(), "raw");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeEngine::Raw => "raw",
            ProbeEngine::Sockets => "sockets",
        }
    }
}

impl std::fmt::Display for ProbeEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    raw: bool,
    raw_source_ports: Option<RangeInclusive<u16>>,
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
            raw: true,
            raw_source_ports: None,
        }
    }
}

impl ProberBuilder {
    /// How probes end: [`Mode::HalfOpen`] (the default), [`Mode::Connect`], or
    /// [`Mode::Raw`].
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

    /// Whether [`Mode::HalfOpen`] may run the raw engine when the process can open raw
    /// sockets (default `true`). With `false` it always runs a socket per probe.
    /// [`Mode::Raw`] ignores this.
    ///
    /// ```
    /// use connhealth::{ProbeEngine, Prober};
    /// let prober = Prober::builder().raw(false).build();
    /// assert_eq!(prober.engine(), Some(ProbeEngine::Sockets));
    /// ```
    pub fn raw(mut self, allow: bool) -> Self {
        self.raw = allow;
        self
    }

    /// The source ports the raw engine sends its SYNs from (default: a range of
    /// `net.ipv4.ip_local_reserved_ports` of at least 1024 ports if one is set, else the
    /// ports above `net.ipv4.ip_local_port_range`, 61000-65535 by default). The kernel
    /// never picks a port of either for a socket of its own, so a SYN-ACK to one of them
    /// finds no socket and the kernel resets it. Reserve the range
    /// (`sysctl net.ipv4.ip_local_reserved_ports=61000-65535`) so that no program binds
    /// it explicitly either. The range needs at least as many ports as
    /// `max_in_flight_per_destination`: a probe finds its port free only when fewer
    /// probes than the range holds are in flight to its address.
    pub fn raw_source_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.raw_source_ports = Some(ports);
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
            raw: self.raw,
            raw_source_ports: self.raw_source_ports,
        })
        .map_err(|err| {
            tracing::error!(%err, "connhealth: cannot start the probe engine");
            err.to_string()
        });
        let kind = engine.as_ref().ok().map(EngineHandle::kind);
        Prober {
            inner: Arc::new(Inner {
                engine,
                kind,
                mode: self.mode,
                max_in_flight: self.max_in_flight,
                dead_peer: self.dead_peer,
            }),
        }
    }
}
