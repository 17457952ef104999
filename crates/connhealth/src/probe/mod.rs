//! Half-open TCP probes: [`Prober`].
//!
//! A probe sends a SYN and waits for the SYN-ACK: the kernel on the other side is
//! listening on that port. In [`Mode::HalfOpen`] (the default, on Linux) the probe then
//! resets the half-finished handshake, so the server application never sees a connection:
//! nothing in its accept queue, its logs or its connection count, and no TIME_WAIT on
//! either side. This is what HAProxy's connect-only check and Go's tcp-shaker do.
//!
//! ```
//! use std::net::TcpListener;
//! use std::time::Duration;
//! use connhealth::{ProbeError, Prober};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let prober = Prober::new();
//!
//! let rtt = prober.probe_addr(listener.local_addr()?, Duration::from_secs(1)).await;
//! assert!(rtt.is_ok()); // the time from SYN to SYN-ACK
//!
//! drop(listener);
//! let closed = prober.probe("127.0.0.1:1", Duration::from_secs(1)).await;
//! assert!(matches!(closed, Err(ProbeError::Refused)));
//! # Ok::<(), std::io::Error>(())
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Two engines
//!
//! A prober runs one of two engines, and [`Prober::engine`] says which:
//!
//! * **The raw engine** ([`ProbeEngine::Raw`]), on Linux when the process may open raw
//!   sockets (`CAP_NET_RAW`; root has it): no socket per probe. [`Mode::HalfOpen`] runs
//!   it when it can, and [`Mode::Raw`] runs it or nothing. It does about twice the
//!   probes per core of the socket engine; see *The raw engine* below.
//! * **The socket engine** ([`ProbeEngine::Sockets`]): a socket per probe, closed as
//!   soon as its connect completes; everywhere, with no privilege. [`Mode::HalfOpen`]
//!   falls back to it without the capability (and says so once, through `tracing`),
//!   [`Mode::Connect`] always runs it, and [`ProberBuilder::raw`]`(false)` keeps
//!   half-open probes on it.
//!
//! Both give the same results for the same targets: the limits, the queue, the
//! deadlines, [`ProbeError`]'s meanings and the [`ProbeFeed`] are one engine's, with
//! two ways of putting a SYN on the wire.
//!
//! # How a half-open probe stays half-open
//!
//! On the raw engine there is no socket: the SYN is built and sent from user space, and
//! when the SYN-ACK arrives the kernel finds no socket on its port and answers it with
//! an RST itself, at once. With the socket engine, on Linux each probe socket gets TCP_QUICKACK off (delayed-ACK mode) and a zero linger
//! *before* the connect. When the SYN-ACK arrives the kernel marks the socket connected
//! but holds back its ACK for the delayed-ACK timer (~40 ms, at most ~200 ms). The engine
//! sees the socket writable and closes it at once: the zero linger turns the close into
//! an RST, which removes the server's half-open request. The server's `accept()` never
//! returns it. This only holds if the close comes well before the delayed ACK, whatever
//! the load; that is why the socket is closed by the thread that saw the event, in the
//! same turn, before any new work is taken (see below). Without TCP_QUICKACK (every
//! system but Linux: macOS, the BSDs and Windows), the kernel ACKs at once and the probe
//! behaves like [`Mode::Connect`]: the handshake completes and is reset.
//!
//! On Windows the engine waits with `WSAPoll` and is woken through a loopback UDP socket.
//! Windows retries a SYN answered by an RST for about a second before it reports the
//! refusal, so a refused probe there needs a timeout above a second to read as
//! [`ProbeError::Refused`] rather than [`ProbeError::TimedOut`]. `WSAPoll` reports a
//! failed connect on Windows 10 2004 and later; on earlier releases a refused probe reads
//! as a timeout.
//!
//! # The raw engine
//!
//! What `limits.c raw`-style scanners (zmap, masscan) do, for a health checker:
//!
//! * **Sending.** Each SYN is built in user space with the options a Linux SYN carries
//!   (MSS, SACK permitted, timestamps, window scale), so that servers and middleboxes
//!   answer it as they answer the kernel's. A turn's SYNs leave in one `sendmmsg` per
//!   address family, from one raw socket (IPv4) and one IPv6 raw socket, which the
//!   kernel checksums.
//! * **Receiving.** SYN-ACKs and RSTs come back through the same raw sockets, ICMP and
//!   ICMPv6 destination unreachable through two more; a classic BPF filter on each, in
//!   the kernel, keeps only the packets to (or quoting) the engine's source ports. The
//!   kernel hands each raw socket a copy of every inbound TCP (or ICMP) packet of the
//!   host before its filter drops it: on a host that receives hundreds of thousands of
//!   TCP packets a second that is measurable (about a tenth of a microsecond each), and
//!   the socket engine ([`ProberBuilder::raw`]`(false)`) has no such cost.
//! * **Validation.** A SYN's sequence number is a keyed hash of the target's address and
//!   port and the probe's source port, with a key drawn at random when the engine starts.
//!   A reply counts only if it comes from the probe's target, to its port, and
//!   acknowledges that number (an ICMP error must quote it). A stray or forged SYN-ACK
//!   from anyone who cannot see the prober's SYNs marks nothing up.
//! * **Retransmission.** An unanswered SYN is sent again on the kernel's schedule (after
//!   1 s, then 2 s, 4 s, ... later) until the probe's timeout, so a lost SYN does not
//!   read as a dead target.
//! * **Source ports.** By default the first range of at least 1024 ports in
//!   `net.ipv4.ip_local_reserved_ports`, else the ports above
//!   `net.ipv4.ip_local_port_range` (61000-65535 with Linux's defaults):
//!   the kernel never picks a port of either for a socket of its own, so a SYN-ACK to one
//!   finds no socket. [`ProberBuilder::raw_source_ports`] names another range. A
//!   program that *binds* one of these ports explicitly could still collide with a probe;
//!   reserving the range stops that: `sysctl net.ipv4.ip_local_reserved_ports=61000-65535`.
//!   A probe's port is unique among the probes in flight to its address, as a connect's
//!   is; with the range's ports all in flight to one address, that address waits
//!   (or gets [`ProbeError::Exhausted`]), as with the socket engine's local ports.
//! * Everything else is the socket engine's: `max_in_flight`,
//!   `max_in_flight_per_destination`, the queue, timeouts from the SYN, names, the
//!   feed, and the results: SYN-ACK is `Ok`, RST is [`ProbeError::Refused`], ICMP
//!   unreachable is [`ProbeError::Unreachable`] (or `Refused` for a port unreachable), no
//!   answer is [`ProbeError::TimedOut`], no route is `Unreachable` at once.
//!
//! ## The host firewall, and how to tell it is in the way
//!
//! The raw engine relies on the prober's own kernel to reset each half-open handshake:
//! the SYN-ACK must reach the kernel's TCP, and its RST must leave. Raw sockets see a
//! packet after the `INPUT` chain, so a firewall that drops the SYN-ACK makes the probe
//! time out, as it would for a socket. What only the raw engine needs is the RST:
//!
//! * Rules that drop outgoing RSTs (`iptables -A OUTPUT -p tcp --tcp-flags RST RST -j
//!   DROP`, a common recipe for user-space scanners, or an `nftables` equivalent) stop
//!   them. Probes still succeed, but each one leaves a half-open connection on its target
//!   (`SYN-RECV`), which re-sends its SYN-ACK for about a minute: a health checker with
//!   thousands of targets would fill their SYN queues. Allow RSTs from the engine's
//!   source ports, or build the prober with [`ProberBuilder::raw`]`(false)`.
//! * A stateful `INPUT` policy (`-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`)
//!   lets the SYN-ACKs in: conntrack sees the raw SYN leave, as it sees the kernel's.
//!
//! To tell: on a target, `ss -tn state syn-recv` lists half-open connections from the
//! prober's address that outlive its probes; on the prober, `nstat -az TcpOutRsts`
//! grows by one per answered probe when the RSTs leave. The engine watches for it too:
//! SYN-ACKs that keep arriving after their probe ended are the targets' retransmissions,
//! and when they are as many as half of the answers, it logs a warning once.
//!
//! A process may run several raw probers; each picks its ports from the range at a
//! random offset, and two probes from different probers collide only when both are in
//! flight to the same address from the same port at once: the target takes the second
//! SYN for a repeat of the first, and the second probe waits for its retransmission or
//! its timeout.
//!
//! # The engine, and why it is a thread of its own
//!
//! The floor on this kind of machine, one C thread with epoll closing each socket on its
//! writable edge, does 115-120k probes/s. A future per probe on tokio with socket2 gets
//! close to it on a current-thread runtime (~114k/s), but about half of it (~53k/s) on a
//! 2-worker multi-thread runtime: every readiness event and every completion wakes a task
//! on another thread, and those cross-thread wake-ups cost more than the probe. A prober's
//! speed should not depend on the caller's runtime, so the prober does not use it:
//!
//! * **One engine thread per [`Prober`]** (shared by its clones, stopped and joined when
//!   the last clone drops) owns an epoll instance and every probe socket, from `socket()`
//!   to `close()`. Sockets are registered edge-triggered for `EPOLLOUT` (a connect
//!   completes, or fails, exactly once) and closed in the same turn that sees them ready,
//!   before anything else is done: the delayed-ACK window is never at risk of being
//!   spent in a queue. A turn then starts at most 256 new probes; a backlog behind a
//!   large `max_in_flight` is started over the next turns, each after its ready sockets
//!   are closed, so that no turn grows long enough to hold answered sockets open.
//! * **Batched submissions.** Callers push work onto a queue under one mutex and write
//!   the engine's eventfd only when the queue goes from empty to non-empty; the engine
//!   drains the whole queue each turn. [`Prober::probe_many`] hands over up to half its
//!   window (twice `max_in_flight`) in one push, so at full speed a wake-up carries
//!   hundreds of probes.
//! * **Batched completions.** A `probe_many` stream or a [`ProbeFeed`] receives its
//!   results in a shared vector and is woken once per engine turn, not once per probe.
//!   Single probes complete through a `tokio::sync::oneshot`, which wakes any executor:
//!   the prober works under tokio (either flavour), another runtime, or a plain
//!   `block_on`.
//! * **Entries and generations.** Each probe lives in an entry of the engine's table;
//!   epoll's data and the queues name it by the entry's index and generation, and the
//!   deadline heap by the index and a count of the deadlines armed for it, never by
//!   descriptor. A descriptor closed and reused by the next probe cannot receive the old
//!   probe's event or timeout.
//! * **Deadlines** sit in a binary heap keyed by `(deadline, index, arm)`; the epoll
//!   timeout is the next deadline (rounded up to the millisecond), so a probe times out
//!   at its timeout, not at the next tick of some coarser timer. Entries of probes that
//!   finished early are skipped lazily and compacted away when they outnumber live ones,
//!   told apart by a dense count per table index that stays in the cache with thousands
//!   in flight (the table itself does not).
//!   How a probe flows through the engine, turn by turn, is written down in
//!   `src/probe/engine/mod.rs`.
//! * **Limits.** At most `max_in_flight` probes are in flight, and at most
//!   `max_in_flight_per_destination` to one address, because many SYNs in flight to one
//!   listener overflow its SYN backlog and the probe would measure the backlog. Further
//!   probes wait in FIFO order.
//! * **Local exhaustion** (`EMFILE`, `ENFILE`, `EADDRNOTAVAIL`, `ENOBUFS`, `ENOMEM`) at
//!   `socket()` or `connect()` is not the target's fault. Out of descriptors or buffers,
//!   the engine stops starting probes and retries when one of its own probes gives a
//!   descriptor back (or after 10 ms): it slows down instead of failing everything
//!   queued. Out of local ports toward one destination (`EADDRNOTAVAIL`: a connect's
//!   port need only be unique per destination), only that destination waits, for one of
//!   its own probes to give a port back (or 10 ms); the others go on. A probe gets
//!   [`ProbeError::Exhausted`] only when none of the engine's probes that could give the
//!   resource back is in flight, or when its own timeout passes while it waits.
//!
//! The engine thread is spawned by [`ProberBuilder::build`] (and [`Prober::new`]) from
//! the calling thread, and a thread inherits its creator's network namespace: **the
//! prober's sockets live in the network namespace of the thread that built the prober**.
//! A prober built inside `setns(CLONE_NEWNET)` probes that namespace, whichever thread
//! awaits its probes.
//!
//! # A feed for health checkers
//!
//! A checker that probes thousands of targets on a schedule keeps one [`ProbeFeed`]
//! ([`Prober::feed`]): it pushes each probe as it falls due, with a tag of its own (a
//! target's index, say), flushes the tick's probes to the engine in one batch, and takes
//! the finished probes' [`FeedResult`]s in batches. Each probe's timeout runs from its own
//! SYN; an optional `start_by` says how late it may leave, after which it ends as
//! [`ProbeError::Exhausted`] without being sent: a checker whose queue is long reports
//! its own trouble, not a dead target. A target may be a host name
//! ([`ProbeFeed::push_target`]): the feed resolves it on the prober's resolver threads and
//! tries its addresses in order, as [`Prober::probe`] does, and reports the address that
//! answered and the time the lookup took.
//!
//! ```
//! use std::net::TcpListener;
//! use std::time::{Duration, Instant};
//! use connhealth::Prober;
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let targets = (0..3)
//!     .map(|_| TcpListener::bind("127.0.0.1:0"))
//!     .collect::<Result<Vec<_>, _>>()?;
//! let prober = Prober::new();
//! let mut feed = prober.feed();
//! let (timeout, tick) = (Duration::from_secs(1), Duration::from_secs(2));
//! for (index, target) in targets.iter().enumerate() {
//!     // Sent before the next tick, or reported Exhausted; then 1 s from its SYN.
//!     feed.push(index as u64, target.local_addr()?, timeout, Some(Instant::now() + tick));
//! }
//! feed.flush();
//! let mut results = Vec::new();
//! while feed.outstanding() > 0 {
//!     feed.done(&mut results).await;
//! }
//! for result in &results {
//!     println!("target {} ({}): {:?}", result.tag, result.addr, result.result);
//!     assert!(result.result.is_ok());
//! }
//! # Ok::<(), std::io::Error>(())
//! # })?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Timeouts
//!
//! For [`Prober::probe`] and [`Prober::probe_addr`] the timeout bounds the whole call:
//! name resolution, waiting for a free place in flight, and the handshake. For
//! [`Prober::probe_many`] and [`ProbeFeed::push`] it runs from the moment each probe's
//! SYN leaves, so probes queued behind `max_in_flight` do not time out before they are
//! tried; a feed's `start_by` bounds the wait instead. A host name pushed with
//! [`ProbeFeed::push_target`] counts its timeout from the start of its lookup: the lookup
//! spends from it, and each address gets what is left, from its own SYN. (In the engine,
//! a waiting probe's deadline is its `start_by`; at its SYN it is re-armed for SYN +
//! timeout, and the deadline heap skips the entry it leaves behind.)
//!
//! Name resolution uses the system resolver (`getaddrinfo`), which blocks and cannot be
//! cancelled. It runs neither on the caller's thread nor on the engine's, but on resolver
//! threads, at most 16 per prober, started on demand and gone after 5 s without work; at
//! the deadline the probe stops waiting and returns [`ProbeError::Resolve`], and the
//! thread finishes on its own. A hung resolver therefore cannot hold a probe past its
//! timeout, and a burst of names does not start a thread each.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::sync::Arc;
use crate::util::deadline_after;
use crate::DeadPeer;

mod builder;
mod deadlines;
mod destination;
mod engine;
mod error;
mod feed;
mod handle;
mod inbox;
mod many;
mod name;
mod raw;
mod resolver;
mod results;
mod target;

pub use self::builder::{Mode, ProbeEngine, ProberBuilder};
pub use self::error::ProbeError;
pub use self::feed::ProbeFeed;
pub use self::many::ProbeMany;
pub use self::results::FeedResult;
pub use self::target::Target;

use self::handle::EngineHandle;
use self::inbox::{Inbox, Job, ProbeResult, Reply, Submission, Timing};
use self::name::NameProbe;

/// Probes TCP endpoints: is something listening there? See the [module docs](self) for
/// how, and for the engine behind it.
///
/// Cloning is cheap; clones share one engine thread, which stops when the last clone (and
/// the last stream from [`Prober::probe_many`]) is dropped: that drop waits for the engine
/// to close the sockets it still holds, so a dropped prober leaves no descriptor behind.
/// Build one prober and share it.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use connhealth::Prober;
///
/// # fn main() -> std::io::Result<()> {
/// let listeners = (0..3)
///     .map(|_| TcpListener::bind("127.0.0.1:0"))
///     .collect::<Result<Vec<_>, _>>()?;
/// let addrs = listeners.iter().map(|l| l.local_addr()).collect::<Result<Vec<_>, _>>()?;
///
/// let prober = Prober::new();
/// tokio::runtime::Runtime::new()?.block_on(async {
///     let mut results = prober.probe_many(addrs, Duration::from_secs(1));
///     while let Some((addr, result)) = results.next().await {
///         println!("{addr}: {result:?}");
///         assert!(result.is_ok());
///     }
/// });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Prober {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Result<EngineHandle, String>,
    kind: Option<ProbeEngine>,
    mode: Mode,
    max_in_flight: usize,
    dead_peer: Option<DeadPeer>,
}

impl std::fmt::Debug for Prober {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prober")
            .field("mode", &self.inner.mode)
            .field("engine", &self.inner.kind)
            .field("max_in_flight", &self.inner.max_in_flight)
            .field("running", &self.inner.engine.is_ok())
            .finish()
    }
}

impl Default for Prober {
    fn default() -> Self {
        Prober::new()
    }
}

impl Prober {
    /// A half-open prober with the default limits; see [`ProberBuilder`].
    ///
    /// ```
    /// let prober = connhealth::Prober::new();
    /// # drop(prober);
    /// ```
    pub fn new() -> Prober {
        Prober::builder().build()
    }

    /// A builder for a prober with another [`Mode`] or other limits.
    pub fn builder() -> ProberBuilder {
        ProberBuilder::default()
    }

    /// The mode this prober was built with.
    pub fn mode(&self) -> Mode {
        self.inner.mode
    }

    /// The engine that runs this prober's probes: [`ProbeEngine::Raw`] or
    /// [`ProbeEngine::Sockets`] (see [`Mode::HalfOpen`]), or `None` when it could not
    /// start (each probe then says why: for [`Mode::Raw`], most often the missing
    /// `CAP_NET_RAW`).
    ///
    /// ```
    /// use connhealth::{Mode, ProbeEngine, Prober};
    /// let prober = Prober::builder().mode(Mode::Connect).build();
    /// assert_eq!(prober.engine(), Some(ProbeEngine::Sockets));
    /// ```
    pub fn engine(&self) -> Option<ProbeEngine> {
        self.inner.kind
    }

    /// The timeout a probe given `timeout` really gets: `timeout`, capped at the bound of
    /// the [`DeadPeer`] policy the prober was built with
    /// ([`ProberBuilder::dead_peer`]).
    pub fn bounded(&self, timeout: Duration) -> Duration {
        match self.inner.dead_peer {
            Some(policy) => timeout.min(policy.bound()),
            None => timeout,
        }
    }

    /// Where this prober's work goes, or why the engine is not running.
    pub(crate) fn inbox(&self) -> Result<&Inbox, ProbeError> {
        match &self.inner.engine {
            Ok(engine) => Ok(engine.inbox()),
            Err(why) => Err(ProbeError::Io(io::Error::other(format!(
                "the probe engine could not start: {why}"
            )))),
        }
    }

    /// Probes `target`, a `host:port` string: `"127.0.0.1:80"`, `"[::1]:80"` or
    /// `"localhost:6379"`.
    ///
    /// A host name is resolved first, on the prober's resolver threads, within the same
    /// `timeout`; its addresses are tried in order: a refusal or an unreachable address
    /// moves on to the next, until one answers with a SYN-ACK or the timeout passes, and
    /// when none answers, the first refusal is returned (the engine does this, for the
    /// feed's names too: [`ProbeFeed::push_target`]). `Ok` carries the time from the SYN
    /// to the SYN-ACK. A string that is not `host:port` returns
    /// [`ProbeError::InvalidTarget`] with the reason, without touching the network.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use connhealth::{Prober, ProbeError};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let prober = Prober::new();
    /// let err = prober.probe("::1:80", Duration::from_secs(1)).await.unwrap_err();
    /// assert!(matches!(err, ProbeError::InvalidTarget { .. }));
    /// println!("{err}"); // invalid target "::1:80": an IPv6 address needs brackets: [::1]:80
    /// # });
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn probe(&self, target: &str, timeout: Duration) -> Result<Duration, ProbeError> {
        let timeout = self.bounded(timeout);
        let deadline = deadline_after(Instant::now(), timeout);
        match Target::parse(target)? {
            Target::Addr(addr) => self.probe_until(addr, deadline).await,
            // Resolved and tried address by address in the engine, as the feed's names
            // are (`name.rs`).
            Target::Name { host, port } => {
                self.one(move |reply| Submission::Name {
                    host,
                    probe: NameProbe::new(port, Timing::Until(deadline), reply),
                })
                .await
            }
        }
    }

    /// Probes one address. `Ok` carries the time from the SYN to the SYN-ACK.
    ///
    /// The `timeout` bounds the whole call, including any wait for a free place under
    /// `max_in_flight`: a probe still waiting when it passes fails with
    /// [`ProbeError::Exhausted`], not `TimedOut`, since no SYN was sent. Dropping the
    /// future closes the probe's socket at once.
    ///
    /// ```
    /// # use std::net::TcpListener;
    /// # use std::time::Duration;
    /// # use connhealth::Prober;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let listener = TcpListener::bind("[::1]:0").or_else(|_| TcpListener::bind("127.0.0.1:0"))?;
    /// let rtt = Prober::new().probe_addr(listener.local_addr()?, Duration::from_secs(1)).await;
    /// assert!(rtt.unwrap() < Duration::from_secs(1));
    /// # Ok::<(), std::io::Error>(())
    /// # })?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub async fn probe_addr(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<Duration, ProbeError> {
        let timeout = self.bounded(timeout);
        self.probe_until(addr, deadline_after(Instant::now(), timeout))
            .await
    }

    fn probe_until(
        &self,
        addr: SocketAddr,
        deadline: Instant,
    ) -> impl Future<Output = ProbeResult> + Send + 'static {
        self.one(move |reply| {
            Submission::Probe(Job {
                addr,
                timing: Timing::Until(deadline),
                reply,
            })
        })
    }

    /// Submits the one probe `submission` makes with its reply, and waits for its result.
    fn one(
        &self,
        submission: impl FnOnce(Reply) -> Submission,
    ) -> impl Future<Output = ProbeResult> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        let submitted = self
            .inbox()
            .and_then(|inbox| inbox.submit_one(submission(Reply::One(tx))));
        async move {
            submitted?;
            rx.await
                .unwrap_or_else(|_| Err(ProbeError::engine_stopped("it stopped before answering")))
        }
    }

    /// Probes every address of `addrs`, and yields `(address, result)` as each probe
    /// finishes, in that order (not the order of `addrs`).
    ///
    /// The stream feeds the engine in batches and takes results in batches, and starts
    /// only as many probes as it can keep in flight: an iterator of a million addresses
    /// is consumed as the stream is polled, not up front. Each probe's `timeout` runs from
    /// the moment its SYN leaves. Dropping the stream stops the probes not yet started.
    ///
    /// Returns a [`ProbeMany`], a [`futures_core::Stream`]; see the [`Prober`] example.
    pub fn probe_many<I: IntoIterator<Item = SocketAddr>>(
        &self,
        addrs: I,
        timeout: Duration,
    ) -> ProbeMany<I::IntoIter> {
        ProbeMany::new(
            self.clone(),
            addrs.into_iter(),
            self.bounded(timeout),
            self.inner.max_in_flight,
        )
    }
}
