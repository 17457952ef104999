//! The way results come back from the engine to a [`ProbeMany`](super::ProbeMany) or a
//! [`ProbeFeed`](super::ProbeFeed): [`FeedResult`]s pushed into a [`SharedResults`], and
//! one wake of the consumer per engine turn, whatever the number of results in it.

use std::mem;
use std::net::SocketAddr;
use std::task::Waker;
use std::time::{Duration, Instant};

use super::ProbeError;
use crate::sync::atomic::{AtomicBool, Ordering};
use crate::sync::Mutex;

/// A finished probe of a [`ProbeFeed`](super::ProbeFeed).
#[derive(Debug)]
#[non_exhaustive]
pub struct FeedResult {
    /// The tag the probe was pushed with.
    pub tag: u64,
    /// The address probed, whose answer `result` is. For a host name
    /// ([`ProbeFeed::push_target`](super::ProbeFeed::push_target)): the address that
    /// answered or timed out; when every address tried refused or was unreachable, the
    /// first of them, whose error `result` carries; and when the name never resolved (or
    /// its lookup never started), `0.0.0.0` with the target's port, the unspecified
    /// address: no probe went anywhere.
    pub addr: SocketAddr,
    /// When the SYN to `addr` left (`None` if it never did: not sent by its `start_by`,
    /// local exhaustion, a name that did not resolve, or the engine was not running).
    pub sent: Option<Instant>,
    /// How long a host name's lookup took, from when the prober started it to the
    /// resolver's answer (or to the timeout, when it gave none in time). Zero for an
    /// address, and for a name whose lookup never started.
    pub lookup: Duration,
    /// The time from the SYN to the SYN-ACK, or why the probe did not find the endpoint
    /// alive.
    pub result: Result<Duration, ProbeError>,
}

impl FeedResult {
    /// The result of a probe the engine never received: it stopped, or never started.
    pub(crate) fn not_handed_over(tag: u64, addr: SocketAddr) -> FeedResult {
        FeedResult {
            tag,
            addr,
            sent: None,
            lookup: Duration::ZERO,
            result: Err(ProbeError::engine_stopped("it stopped, or could not start")),
        }
    }
}

/// What the engine and one [`ProbeMany`](super::ProbeMany) or
/// [`ProbeFeed`](super::ProbeFeed) share: the results of the turn, the consumer's waker,
/// and whether the consumer is gone.
pub(crate) struct SharedResults {
    inner: Mutex<Inner>,
    closed: AtomicBool,
    batch: usize,
}

struct Inner {
    results: Vec<FeedResult>,
    waker: Option<Waker>,
    /// In the engine's list of consumers to wake (engine-side bookkeeping).
    listed: bool,
    /// When the oldest result in `results` arrived.
    since: Option<Instant>,
}

/// The longest a result waits for a wake while the engine is busy: a small stream must
/// not wait for a big one's burst to end.
const MAX_WAKE_DELAY: Duration = Duration::from_millis(1);

impl SharedResults {
    /// For a consumer of a prober with `max_in_flight`: while the engine is busy, a wake
    /// waits for a quarter of that many results (or [`MAX_WAKE_DELAY`]).
    pub(crate) fn new(max_in_flight: usize) -> SharedResults {
        SharedResults {
            inner: Mutex::new(Inner {
                results: Vec::new(),
                waker: None,
                listed: false,
                since: None,
            }),
            closed: AtomicBool::new(false),
            batch: (max_in_flight / 4).max(1),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The consumer is gone: probes not yet started are dropped instead of sent. (The
    /// consumer then submits [`Submission::StreamDropped`](super::inbox::Submission) to
    /// close those in flight.)
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
    }

    /// Adds a result; true when the engine must add the consumer to its list of
    /// consumers to wake.
    pub(crate) fn push(&self, result: FeedResult) -> bool {
        let mut inner = self.inner.lock();
        if inner.results.is_empty() {
            inner.since = Some(Instant::now());
        }
        inner.results.push(result);
        !mem::replace(&mut inner.listed, true)
    }

    /// The consumer's side: moves every result into `out` and returns how many; with
    /// none, registers `waker` (if given) to be woken when some arrive.
    pub(crate) fn take(&self, out: &mut impl Extend<FeedResult>, waker: Option<&Waker>) -> usize {
        let mut inner = self.inner.lock();
        if inner.results.is_empty() {
            if let Some(waker) = waker {
                match &inner.waker {
                    Some(w) if w.will_wake(waker) => {}
                    _ => inner.waker = Some(waker.clone()),
                }
            }
            return 0;
        }
        let taken = inner.results.len();
        // `drain` keeps the vector's capacity for the engine's next batch.
        out.extend(inner.results.drain(..));
        taken
    }

    /// Wakes the consumer if it has `at_least` results waiting, or its oldest result has
    /// waited [`MAX_WAKE_DELAY`] (or it has taken them all already); true when it is off
    /// the engine's list. `at_least` is 1 when the engine is about to go idle, and a batch
    /// while it is busy: a busy engine would pay for a cross-thread wake-up every few
    /// probes otherwise.
    pub(crate) fn wake(&self, at_least: usize, now: Instant) -> bool {
        let mut inner = self.inner.lock();
        let waited = inner
            .since
            .is_some_and(|since| now.saturating_duration_since(since) >= MAX_WAKE_DELAY);
        if !inner.results.is_empty() && inner.results.len() < at_least && !waited {
            return false;
        }
        inner.listed = false;
        let waker = inner.waker.take();
        drop(inner);
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    /// How many results make a wake worth it while the engine is busy.
    pub(crate) fn batch(&self) -> usize {
        self.batch
    }
}
