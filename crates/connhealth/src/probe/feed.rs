//! [`ProbeFeed`]: a long-lived, tagged feed of probes, for health checkers.
//!
//! It is the second front end of the machinery behind [`ProbeMany`](super::ProbeMany):
//! probes go to the engine in batches (one lock, at most one wake per flush) and come back
//! in batches through the same [`SharedResults`] (at most one wake per engine turn). The
//! stream takes its probes from an iterator and reports addresses; the feed takes them
//! as a checker's schedule makes them due, and reports the caller's tag with each. Host
//! names go through the engine too (`name.rs`): the caller never resolves one itself.

use std::fmt;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::inbox::{Job, Reply, Submission, Timing};
use super::name::NameProbe;
use super::results::{FeedResult, SharedResults};
use super::{Prober, Target};
use crate::sync::Arc;

/// A long-lived feed of tagged probes: push probes as they fall due, [`flush`] them to the
/// engine in one batch, and take finished probes' results in batches. Made by
/// [`Prober::feed`].
///
/// A health checker with thousands of targets keeps one feed: each push costs no lock and
/// no wake-up, a flush costs one lock and at most one wake of the engine, and the engine
/// wakes the feed at most once per turn (within about a millisecond of a result while it is
/// busy), so 10k probes a second cost the caller a few hundred wake-ups, not 10k.
///
/// Each probe's `timeout` runs from the moment its SYN leaves, never from the time it
/// waited for a place under `max_in_flight` or `max_in_flight_per_destination`: a long
/// queue never makes a live target look down. A probe that must not go out late is given
/// a `start_by`; if it has not been sent by then it ends with
/// [`ProbeError::Exhausted`](super::ProbeError::Exhausted), which is the checker's
/// problem, not the target's.
///
/// Dropping the feed closes its probes' sockets at once and drops the probes not yet sent.
///
/// A target may be a host name ([`push_target`]): the prober resolves it on its own
/// resolver threads and tries its addresses in order, and the name's `timeout` then
/// counts from the start of its lookup.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::{Duration, Instant};
/// use connhealth::{ProbeError, Prober};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let up = listener.local_addr()?;
/// let down = TcpListener::bind("127.0.0.1:0")?.local_addr()?; // closed again at once
///
/// let prober = Prober::new();
/// let mut feed = prober.feed();
/// // One tick of a checker: every target due now, tagged with its index, in one flush.
/// let second = Duration::from_secs(1);
/// feed.push(7, up, second, None);
/// feed.push(8, down, second, Some(Instant::now() + second)); // sent within 1 s, or not at all
/// feed.flush();
///
/// let mut results = Vec::new();
/// while feed.outstanding() > 0 {
///     feed.done(&mut results).await; // appends a batch of finished probes
/// }
/// results.sort_by_key(|r| r.tag);
/// assert_eq!((results[0].tag, results[0].addr), (7, up));
/// assert!(results[0].result.is_ok()); // the time from its SYN to the SYN-ACK
/// assert!(results[0].sent.is_some());
/// assert!(matches!(results[1].result, Err(ProbeError::Refused)));
/// # Ok::<(), std::io::Error>(())
/// # })?;
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// A host name, as a checker reads it from its configuration: the result names the
/// address that answered and the time the lookup took.
///
/// ```
/// use std::net::TcpListener;
/// use std::time::Duration;
/// use connhealth::probe::Target;
/// use connhealth::Prober;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// // On 127.0.0.1 only: where "localhost" is ::1 first, ::1 refuses, and 127.0.0.1 is next.
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let target = Target::parse(&format!("localhost:{}", listener.local_addr()?.port()))?;
///
/// let prober = Prober::new();
/// let mut feed = prober.feed();
/// // 5 s from the start of the lookup, the lookup included.
/// feed.push_target(1, &target, Duration::from_secs(5), None);
/// feed.flush();
/// let mut results = Vec::new();
/// while feed.outstanding() > 0 {
///     feed.done(&mut results).await;
/// }
/// let result = &results[0];
/// assert!(result.result.is_ok());
/// assert_eq!(result.addr, listener.local_addr()?); // the address that answered
/// assert!(result.lookup > Duration::ZERO); // zero for an address
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`flush`]: ProbeFeed::flush
/// [`push_target`]: ProbeFeed::push_target
pub struct ProbeFeed {
    prober: Prober,
    shared: Arc<SharedResults>,
    /// Pushed, not yet flushed.
    queued: Vec<Submission>,
    /// Handed to the engine, result not yet taken.
    handed: usize,
    /// Results made here rather than by the engine: it was not running at the flush.
    not_handed: Vec<FeedResult>,
}

impl Prober {
    /// A new [`ProbeFeed`] on this prober's engine: push tagged probes, flush them in one
    /// batch, take their results in batches. See [`ProbeFeed`] for an example.
    pub fn feed(&self) -> ProbeFeed {
        ProbeFeed {
            prober: self.clone(),
            shared: Arc::new(SharedResults::new(self.inner.max_in_flight)),
            queued: Vec::new(),
            handed: 0,
            not_handed: Vec::new(),
        }
    }
}

impl ProbeFeed {
    /// Queues a probe of `addr`, handed to the engine at the next [`flush`](Self::flush).
    /// `timeout` runs from the moment its SYN leaves (never from time spent waiting for a
    /// place under `max_in_flight` / `max_in_flight_per_destination`), capped at the
    /// bound of the prober's [`DeadPeer`](crate::DeadPeer) policy if it has one.
    ///
    /// `start_by`: if the probe has not been sent by then, it is not sent at all and ends
    /// with [`ProbeError::Exhausted`](super::ProbeError::Exhausted) (saying which limit
    /// held it) and `sent: None`.
    /// `None`: it waits for a place as long as it takes.
    ///
    /// The hot path of a checker: no allocation once the feed's buffer has grown to a
    /// tick's probes. For a target that may be a host name, see
    /// [`push_target`](Self::push_target).
    pub fn push(
        &mut self,
        tag: u64,
        addr: SocketAddr,
        timeout: Duration,
        start_by: Option<Instant>,
    ) {
        self.queued.push(Submission::Probe(Job {
            addr,
            timing: Timing::FromSyn {
                timeout: self.prober.bounded(timeout),
                start_by,
            },
            reply: Reply::Many {
                shared: Arc::clone(&self.shared),
                tag,
            },
        }));
    }

    /// Queues a probe of `target`, handed to the engine at the next
    /// [`flush`](Self::flush). An address ([`Target::Addr`]) is exactly
    /// [`push`](Self::push). A host name ([`Target::Name`]) is resolved on the prober's
    /// resolver threads, never on the caller's thread nor the engine's, and its addresses
    /// are tried in the resolver's order: a refusal or an unreachable address moves on to
    /// the next, with what is left of the timeout; the first answer (or a timeout) is the
    /// result, and when no address answered, the first refusal is.
    ///
    /// For a name, `timeout` counts from the moment its lookup starts: the lookup is
    /// part of the check, as a health checker's timeout means. Each address's probe gets
    /// what the lookup and the addresses refused before it left of it, from its own SYN
    /// (waiting for a place under the limits spends none). `start_by` bounds when the
    /// lookup may start, else the result is
    /// [`ProbeError::Exhausted`](super::ProbeError::Exhausted); each address's `start_by`
    /// is moved on by the time already spent, so that the result comes by `start_by` +
    /// `timeout`, as an address's does. A name that does not resolve in time ends with
    /// [`ProbeError::Resolve`](super::ProbeError::Resolve).
    ///
    /// The [`FeedResult`] carries the address whose answer it reports (`0.0.0.0:port`
    /// for a name that never resolved), when its SYN left, and the time the lookup took
    /// (`lookup`, zero for an address). Each address probed counts under
    /// `max_in_flight_per_destination` as any probe of it would, and `timeout` is capped
    /// at the [`DeadPeer`](crate::DeadPeer) bound as `push`'s is.
    pub fn push_target(
        &mut self,
        tag: u64,
        target: &Target,
        timeout: Duration,
        start_by: Option<Instant>,
    ) {
        let (host, port) = match target {
            Target::Addr(addr) => return self.push(tag, *addr, timeout, start_by),
            Target::Name { host, port } => (host, *port),
        };
        let timing = Timing::FromSyn {
            timeout: self.prober.bounded(timeout),
            start_by,
        };
        let reply = Reply::Many {
            shared: Arc::clone(&self.shared),
            tag,
        };
        self.queued.push(Submission::Name {
            host: host.clone(),
            probe: NameProbe::new(port, timing, reply),
        });
    }

    /// Hands every queued probe to the engine in one batch (one lock, at most one wake).
    /// If the engine is not running, each becomes an error result, delivered by
    /// [`poll_done`](Self::poll_done).
    pub fn flush(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let count = self.queued.len();
        let submitted = match self.prober.inbox() {
            Ok(inbox) => inbox.submit(&mut self.queued),
            Err(err) => Err(err),
        };
        match submitted {
            Ok(()) => self.handed += count,
            Err(_) => {
                for item in self.queued.drain(..) {
                    let (addr, reply) = match item {
                        Submission::Probe(job) => (job.addr, job.reply),
                        Submission::Name { probe, .. } => (probe.unresolved(), probe.reply),
                        _ => continue,
                    };
                    if let Reply::Many { tag, .. } = reply {
                        self.not_handed.push(FeedResult::not_handed_over(tag, addr));
                    }
                }
            }
        }
    }

    /// Moves every finished probe's result into `out` (appending); `Ready(())` when it
    /// moved at least one, otherwise registers the waker and returns `Pending`.
    ///
    /// Only flushed probes finish: with nothing [`outstanding`](Self::outstanding) but
    /// queued probes, or nothing at all, it stays `Pending` until a flush and a result.
    pub fn poll_done(&mut self, cx: &mut Context<'_>, out: &mut Vec<FeedResult>) -> Poll<()> {
        if !self.not_handed.is_empty() {
            out.append(&mut self.not_handed);
            return Poll::Ready(());
        }
        match self.shared.take(out, Some(cx.waker())) {
            0 => Poll::Pending,
            taken => {
                self.handed -= taken;
                Poll::Ready(())
            }
        }
    }

    /// [`poll_done`](Self::poll_done) as a future: waits until at least one probe has
    /// finished, and appends every finished probe's result to `out`.
    pub async fn done(&mut self, out: &mut Vec<FeedResult>) {
        poll_fn(|cx| self.poll_done(cx, out)).await
    }

    /// Probes handed over or queued whose result has not been taken yet.
    pub fn outstanding(&self) -> usize {
        self.queued.len() + self.handed + self.not_handed.len()
    }
}

impl fmt::Debug for ProbeFeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeFeed")
            .field("queued", &self.queued.len())
            .field("handed", &self.handed)
            .field("not_handed", &self.not_handed.len())
            .finish_non_exhaustive()
    }
}

impl Drop for ProbeFeed {
    fn drop(&mut self) {
        // As a dropped ProbeMany: probes not yet started are dropped by the engine instead
        // of sent; those in flight are closed now rather than at their timeouts.
        self.shared.close();
        if self.handed > 0 {
            if let Ok(inbox) = self.prober.inbox() {
                let _ = inbox.submit_one(Submission::StreamDropped);
            }
        }
    }
}
