//! [`ProbeMany`]: the stream behind [`Prober::probe_many`](super::Prober::probe_many).
//!
//! It and [`ProbeFeed`](super::ProbeFeed) feed the engine in batches (one lock and at
//! most one wake per batch) and take results back in batches through a
//! [`SharedResults`] (the engine wakes them once per turn, whatever the number of results
//! in that turn). There is no future per probe.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use futures_core::Stream;

use super::inbox::{Job, Reply, Submission, Timing};
use super::results::{FeedResult, SharedResults};
use super::{ProbeError, Prober};
use crate::sync::Arc;

/// The most probes a stream hands the engine ahead of their results: far more than a
/// process has descriptors for, by default.
const MAX_WINDOW: usize = 1 << 17;

/// The results of [`Prober::probe_many`], in the order the probes finish.
///
/// A [`Stream`] of `(address, result)` pairs; [`ProbeMany::next`] awaits the next one
/// without needing a stream extension trait. It starts probes as it is polled, keeping
/// up to twice the prober's `max_in_flight` handed to the engine; dropping it stops
/// probes that have not started yet.
pub struct ProbeMany<I> {
    prober: Prober,
    shared: Arc<SharedResults>,
    addrs: Option<I>,
    timeout: Duration,
    /// Handed to the engine, result not yet taken.
    outstanding: usize,
    window: usize,
    refill: usize,
    ready: VecDeque<FeedResult>,
    batch: Vec<Submission>,
}

// Nothing in a ProbeMany is ever pinned in place: the iterator is only called through
// `&mut`, so moving the stream is always fine.
impl<I> Unpin for ProbeMany<I> {}

impl<I> fmt::Debug for ProbeMany<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProbeMany")
            .field("timeout", &self.timeout)
            .field("outstanding", &self.outstanding)
            .field("ready", &self.ready.len())
            .field("exhausted", &self.addrs.is_none())
            .finish_non_exhaustive()
    }
}

impl<I: Iterator<Item = SocketAddr>> ProbeMany<I> {
    pub(crate) fn new(prober: Prober, addrs: I, timeout: Duration, max_in_flight: usize) -> Self {
        ProbeMany {
            prober,
            shared: Arc::new(SharedResults::new(max_in_flight)),
            addrs: Some(addrs),
            timeout,
            outstanding: 0,
            // Twice the engine's limit: the engine always has the next batch queued
            // while this stream's consumer is being woken to hand it more. Capped, so
            // that a limit set beyond what descriptors allow does not drain an endless
            // iterator into memory.
            window: max_in_flight.saturating_mul(2).clamp(1, MAX_WINDOW),
            refill: (max_in_flight / 4).clamp(1, MAX_WINDOW / 4),
            ready: VecDeque::new(),
            batch: Vec::new(),
        }
    }

    /// The next result, or `None` when every address has been probed.
    pub async fn next(&mut self) -> Option<(SocketAddr, Result<Duration, ProbeError>)> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Hands the engine another batch when there is room for a worthwhile one.
    fn top_up(&mut self) {
        let room = self.window - self.outstanding;
        if room == 0 || (self.outstanding > 0 && room < self.refill) {
            return;
        }
        let Some(addrs) = self.addrs.as_mut() else {
            return;
        };
        for _ in 0..room {
            match addrs.next() {
                Some(addr) => self.batch.push(Submission::Probe(Job {
                    addr,
                    timing: Timing::FromSyn {
                        timeout: self.timeout,
                        start_by: None,
                    },
                    // The stream reports addresses only: every probe has tag 0.
                    reply: Reply::Many {
                        shared: self.shared.clone(),
                        tag: 0,
                    },
                })),
                None => {
                    self.addrs = None;
                    break;
                }
            }
        }
        if self.batch.is_empty() {
            return;
        }
        let count = self.batch.len();
        let submitted = match self.prober.inbox() {
            Ok(inbox) => inbox.submit(&mut self.batch),
            Err(err) => Err(err),
        };
        match submitted {
            Ok(()) => self.outstanding += count,
            Err(_) => {
                for item in self.batch.drain(..) {
                    if let Submission::Probe(job) = item {
                        self.ready
                            .push_back(FeedResult::not_handed_over(0, job.addr));
                    }
                }
            }
        }
    }

    /// Moves the engine's results into `ready`; registers `waker` when there are none.
    fn take_results(&mut self, waker: Option<&Waker>) {
        self.outstanding -= self.shared.take(&mut self.ready, waker);
    }
}

impl<I: Iterator<Item = SocketAddr>> Stream for ProbeMany<I> {
    type Item = (SocketAddr, Result<Duration, ProbeError>);

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let item = |result: FeedResult| Poll::Ready(Some((result.addr, result.result)));
        if let Some(result) = this.ready.pop_front() {
            return item(result);
        }
        this.take_results(None);
        // Refill before handing out results, so the engine works while the caller does.
        this.top_up();
        if let Some(result) = this.ready.pop_front() {
            return item(result);
        }
        if this.outstanding == 0 && this.addrs.is_none() {
            return Poll::Ready(None);
        }
        this.take_results(Some(cx.waker()));
        match this.ready.pop_front() {
            Some(result) => item(result),
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let known = self.ready.len() + self.outstanding;
        match &self.addrs {
            None => (known, Some(known)),
            Some(addrs) => {
                let (lo, hi) = addrs.size_hint();
                (known + lo, hi.and_then(|hi| hi.checked_add(known)))
            }
        }
    }
}

impl<I> Drop for ProbeMany<I> {
    fn drop(&mut self) {
        // Probes not yet started are dropped by the engine instead of sent; those in
        // flight are closed now rather than at their timeouts.
        self.shared.close();
        if self.outstanding > 0 {
            if let Ok(inbox) = self.prober.inbox() {
                let _ = inbox.submit_one(Submission::StreamDropped);
            }
        }
    }
}
