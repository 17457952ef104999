//! What callers hand the engine ([`Submission`]), and the [`Inbox`] it arrives in: the
//! only part of the engine that other threads touch.
//!
//! Every front end ([`Prober::probe`](super::Prober::probe), `probe_addr`, `probe_many`,
//! the feed, with addresses or names), the resolver threads and the cancel wakers push
//! here, under one mutex. The engine is woken only when the inbox goes from empty to
//! non-empty, and takes everything in it at the start of each turn.

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::name::NameProbe;
use super::results::SharedResults;
use super::ProbeError;
use crate::sync::{Arc, Mutex};
use crate::sys::probe::Waker;

pub(crate) type ProbeResult = Result<Duration, ProbeError>;

/// Names one probe in the engine's table: the index of its entry, and the entry's
/// generation when the probe was put there. The poller's tokens and the deadlines carry
/// it, never a descriptor: a descriptor closed and reused by the next probe, or an entry
/// reused by the next probe, must not receive the old probe's event or deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ProbeId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl ProbeId {
    /// The poller token: `index | generation << 32`. The waker's token is `u64::MAX`, an
    /// index no table reaches.
    pub(crate) fn token(self) -> u64 {
        u64::from(self.index) | u64::from(self.generation) << 32
    }

    pub(crate) fn from_token(token: u64) -> ProbeId {
        ProbeId {
            index: token as u32,
            generation: (token >> 32) as u32,
        }
    }
}

/// Where a probe's result goes.
pub(crate) enum Reply {
    /// One `probe`/`probe_addr` future.
    One(oneshot::Sender<ProbeResult>),
    /// A `probe_many` stream or a [`ProbeFeed`](super::ProbeFeed): results are pushed in
    /// batches, one wake per engine turn. The stream ignores the tag.
    Many {
        shared: Arc<SharedResults>,
        tag: u64,
    },
    /// A probe of a host name, on its way to `One` or `Many`: its lookup, or one of its
    /// addresses, with what the name needs to go on to the next (`name.rs`). Boxed, so
    /// that a reply, and a probe's entry, is no larger for it.
    Name(Box<NameProbe>),
}

impl Reply {
    /// Nobody waits for the answer any more: the future or stream was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Reply::One(tx) => tx.is_closed(),
            Reply::Many { shared, .. } => shared.is_closed(),
            Reply::Name(name) => name.reply.is_closed(),
        }
    }

    /// The future waiting for this probe, if one is (`probe`, `probe_addr`): the engine
    /// hears through it when the future is dropped.
    pub(crate) fn future_mut(&mut self) -> Option<&mut oneshot::Sender<ProbeResult>> {
        match self {
            Reply::One(tx) => Some(tx),
            Reply::Many { .. } => None,
            Reply::Name(name) => name.reply.future_mut(),
        }
    }
}

/// A probe to start.
pub(crate) struct Job {
    pub(crate) addr: SocketAddr,
    pub(crate) timing: Timing,
    pub(crate) reply: Reply,
}

/// When a probe gives up.
#[derive(Clone, Copy)]
pub(crate) enum Timing {
    /// `probe` and `probe_addr`: one deadline for the whole call, the wait for a place
    /// under the limits included.
    Until(Instant),
    /// `probe_many` and the feed: `timeout` runs from the moment the SYN leaves, so a
    /// probe queued behind the limits is not timed out before it is tried. One not sent
    /// by `start_by` is not sent at all (`None`: it waits as long as it takes). (A name's
    /// timeout counts from its lookup instead; `name.rs` says how.)
    FromSyn {
        timeout: Duration,
        start_by: Option<Instant>,
    },
}

impl Timing {
    /// The deadline of a probe that has not been sent yet, if it has one, and the timeout
    /// that runs from its SYN, if it has one.
    pub(crate) fn split(self) -> (Option<Instant>, Option<Duration>) {
        match self {
            Timing::Until(at) => (Some(at), None),
            Timing::FromSyn { timeout, start_by } => (start_by, Some(timeout)),
        }
    }
}

/// What callers hand the engine.
pub(crate) enum Submission {
    Probe(Job),
    /// A host name to resolve on the resolver threads, then probe address by address.
    Name {
        host: String,
        probe: Box<NameProbe>,
    },
    /// From a resolver thread: the answer for the resolution `id`.
    Resolved {
        id: ProbeId,
        result: io::Result<Vec<SocketAddr>>,
    },
    /// The future waiting for the probe `id` was dropped (sent by the engine's cancel
    /// waker): close its socket now rather than at its deadline.
    Cancelled {
        id: ProbeId,
    },
    /// A `probe_many` stream or a feed was dropped: close the sockets of its probes in
    /// flight.
    StreamDropped,
}

struct Pending {
    items: Vec<Submission>,
    /// Cleared when the last handle drops (shutdown) or the engine stops.
    open: bool,
    why_closed: &'static str,
}

/// The part of the engine that other threads touch: the submissions not yet taken, and
/// the waker.
pub(crate) struct Inbox {
    pending: Mutex<Pending>,
    waker: Waker,
}

impl Inbox {
    pub(crate) fn new(waker: Waker) -> Inbox {
        Inbox {
            pending: Mutex::new(Pending {
                items: Vec::new(),
                open: true,
                why_closed: "",
            }),
            waker,
        }
    }

    /// Moves every submission in `items` to the engine, in one lock. The engine is woken
    /// only when the inbox goes from empty to non-empty: while it is non-empty, the
    /// engine has a wake pending and will drain everything at once.
    ///
    /// On error the submissions stay in `items`.
    pub(crate) fn submit(&self, items: &mut Vec<Submission>) -> Result<(), ProbeError> {
        let mut pending = self.pending.lock();
        if !pending.open {
            return Err(ProbeError::engine_stopped(pending.why_closed));
        }
        let was_empty = pending.items.is_empty();
        pending.items.append(items);
        drop(pending);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    pub(crate) fn submit_one(&self, item: Submission) -> Result<(), ProbeError> {
        let mut pending = self.pending.lock();
        if !pending.open {
            return Err(ProbeError::engine_stopped(pending.why_closed));
        }
        let was_empty = pending.items.is_empty();
        pending.items.push(item);
        drop(pending);
        if was_empty {
            self.waker.wake();
        }
        Ok(())
    }

    /// The engine's side: swaps everything submitted since the last turn into `into`
    /// (which must be empty: its capacity comes back for the next turn). False once the
    /// inbox is closed: the engine must stop.
    pub(crate) fn take(&self, into: &mut Vec<Submission>) -> bool {
        let mut pending = self.pending.lock();
        mem::swap(&mut pending.items, into);
        pending.open
    }

    /// Refuses further submissions, saying `why`, and returns those not yet taken.
    pub(crate) fn close(&self, why: &'static str) -> Vec<Submission> {
        let mut pending = self.pending.lock();
        if pending.open {
            pending.open = false;
            pending.why_closed = why;
        }
        mem::take(&mut pending.items)
    }

    pub(crate) fn waker(&self) -> &Waker {
        &self.waker
    }
}
