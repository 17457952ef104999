//! What the pool has done: [`Stats`], a snapshot of its gauges and counters.

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// A snapshot of a pool's gauges (size, idle, active) and counters (everything else,
/// counted since the pool was built). Taken by [`Pool::stats`](super::Pool::stats).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use connhealth::pool::{Pool, TcpManager};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let pool = Pool::builder().max_size(4).build(TcpManager::new(listener.local_addr()?.to_string())).await?;
/// let conn = pool.get().await.expect("a connection");
/// let stats = pool.stats();
/// assert_eq!((stats.size(), stats.active(), stats.idle()), (1, 1, 0));
/// drop(conn);
/// assert_eq!((pool.stats().idle(), pool.stats().successes()), (1, 1));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub(crate) size: usize,
    pub(crate) idle: usize,
    pub(crate) connecting: usize,
    pub(crate) requests: u64,
    pub(crate) successes: u64,
    pub(crate) idle_closed: u64,
    pub(crate) lifetime_closed: u64,
    pub(crate) check_failed: u64,
    pub(crate) ping_failed: u64,
    pub(crate) peer_closed: u64,
    pub(crate) wait_count: u64,
    pub(crate) wait_time: Duration,
    pub(crate) timeouts: u64,
    pub(crate) connect_errors: u64,
}

impl Stats {
    /// Connections that count against `max_size`: open ones (idle or checked out) and
    /// connects in flight.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Open connections waiting in the pool.
    pub fn idle(&self) -> usize {
        self.idle
    }

    /// Connections checked out (held by a [`Pooled`](super::Pooled), or being checked
    /// before one is handed out).
    pub fn active(&self) -> usize {
        self.size.saturating_sub(self.idle + self.connecting)
    }

    /// Connects in flight (for a `get`, for growth, or to keep `min_idle`).
    pub fn connecting(&self) -> usize {
        self.connecting
    }

    /// Calls to [`Pool::get`](super::Pool::get).
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Calls to `get` that returned a connection.
    pub fn successes(&self) -> u64 {
        self.successes
    }

    /// Connections closed because they sat idle longer than `idle_timeout`.
    pub fn idle_closed(&self) -> u64 {
        self.idle_closed
    }

    /// Connections closed because they outlived their `max_lifetime` (found idle by the
    /// evictor, at checkout, or on return).
    pub fn lifetime_closed(&self) -> u64 {
        self.lifetime_closed
    }

    /// Connections `Manager::check` found closed at checkout, and dropped instead of
    /// handed out.
    pub fn check_failed(&self) -> u64 {
        self.check_failed
    }

    /// Connections whose `Manager::ping` failed at checkout.
    pub fn ping_failed(&self) -> u64 {
        self.ping_failed
    }

    /// Idle connections the peer closed, noticed by the pool's watcher from the
    /// runtime's readiness events, without a `get`.
    pub fn peer_closed(&self) -> u64 {
        self.peer_closed
    }

    /// Calls to `get` that found no idle connection and no free permit, and queued.
    pub fn wait_count(&self) -> u64 {
        self.wait_count
    }

    /// Total time spent queued by the calls counted in [`Stats::wait_count`], each from
    /// the moment it queued to the moment its wait ended: a connection or permit handed to
    /// it, its timeout, the pool's close, or its `get` future dropped. Each wait is read
    /// on the pool's coarse clock (one scheduler tick, 1–4 ms on Linux), which costs no
    /// system call; over many waits the total is accurate, since a wait is as likely to
    /// be rounded up as down.
    pub fn wait_time(&self) -> Duration {
        self.wait_time
    }

    /// Calls to `get` that gave up after `get_timeout`.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// Failed connects (for a `get`, for growth, or to keep `min_idle`).
    pub fn connect_errors(&self) -> u64 {
        self.connect_errors
    }
}

/// The counters kept outside the pool's lock: each is bumped where the event is seen,
/// with a relaxed add (they order nothing).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// Checkouts that failed their check, lifetime or ping (or were cancelled during the
    /// ping): `successes` is the checkouts counted under the lock less these, so that the
    /// fast path bumps no shared counter of its own.
    pub(crate) rejected: AtomicU64,
    pub(crate) idle_closed: AtomicU64,
    pub(crate) lifetime_closed: AtomicU64,
    pub(crate) check_failed: AtomicU64,
    pub(crate) ping_failed: AtomicU64,
    pub(crate) peer_closed: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) connect_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64, by: u64) {
        counter.fetch_add(by, Relaxed);
    }

    pub(crate) fn fill(&self, stats: &mut Stats) {
        stats.idle_closed = self.idle_closed.load(Relaxed);
        stats.lifetime_closed = self.lifetime_closed.load(Relaxed);
        stats.check_failed = self.check_failed.load(Relaxed);
        stats.ping_failed = self.ping_failed.load(Relaxed);
        stats.peer_closed = self.peer_closed.load(Relaxed);
        stats.timeouts = self.timeouts.load(Relaxed);
        stats.connect_errors = self.connect_errors.load(Relaxed);
    }
}
