//! The pool's shared state, and the background task that keeps it healthy: this file
//! (the shared state, the return, the permits and the close), [`checkout`] (the first
//! step of a `get` and the loop that drives it), [`lanes`] (one per CPU, the fast path),
//! [`waiters`] (the queue, first in, first out) and [`maintenance`] (the background
//! task: evictor, watcher, replenisher).
//!
//! One lock ([`crate::sync::Mutex`]) guards everything that must change together: the
//! idle connections, the count of permits taken against `max_size` (a permit is held by
//! each open connection and each connect in flight), and the queue of waiters.
//! Beside it, each CPU has a lane: a lock of its own, on a cache line of its own, that
//! holds the connection last returned on that CPU. A return with no one waiting parks its
//! connection there, and the next checkout on that CPU takes it back: tasks on different
//! cores then reuse connections without meeting on the shared lock. Before lanes, two
//! cores in a tight checkout loop took turns on that lock, and fell asleep on it (futex
//! waits) often enough to run at a quarter of one core's speed. A checkout whose lane is
//! empty takes the shared lock once (pop an idle connection, or one parked in another
//! CPU's lane, before it opens a new one); so does a return whose lane is full (the
//! older connection moves to the shared list) or that finds waiters. Nothing else is
//! touched: no atomics but the `Arc` clone a [`Pooled`](super::Pooled) holds and three
//! read-mostly flags (the counters are kept under the lock each path holds), no precise
//! clock, no timer, no allocation. A checkout that must queue registers its waker under
//! the shared lock, so a wait costs one more lock, when the hand-off is taken. Lane
//! locks are taken inside the shared lock, never the other way round. No lock is held
//! across user code or an await, except for `Manager::poll_closed`, which is a readiness
//! poll (see its documentation); a poisoned lock is recovered, because every critical
//! section leaves the state whole before it can panic.
//!
//! Waiters queue in arrival order. While anyone waits, checkouts and returns skip the
//! lanes. A returned connection, or a permit freed by a closed one, is put straight into
//! the oldest waiter's place under the lock, and its task woken after the lock is
//! released, so a newcomer can never overtake it. A return that parked its connection
//! just as a checkout queued on another core is caught from both sides: the checkout
//! publishes that it waits (`queued`) and then looks in every lane; the return reads
//! `queued` after it has let go of its lane. Whichever of the two took the lane's lock
//! second sees the other, so the connection reaches the waiter (the same handshake
//! keeps the idle watcher from missing a parked connection as it goes quiet). Waiters
//! live in a vector that is reused, so even the contended path allocates nothing
//! once the queue has reached its longest. A waiter that is dropped marks itself
//! cancelled (skipped and freed by the next hand-off or sweep), or hands on whatever
//! already reached it ([`Waiting`](waiters::Waiting)'s `Drop`). Every change to a
//! waiter happens under the lock, so a hand-off cannot race a cancellation.
//!
//! `loom_models` model-checks these protocols (`scripts/loom`), on this very code.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::Duration;

use super::stats::{Counters, Stats};
use super::Manager;
use crate::sync::atomic::{AtomicBool, Ordering::Relaxed};
use crate::sync::{Arc, Mutex, MutexGuard};
use crate::sys::clock::{coarse_now, coarse_resolution, CoarseTime};
use crate::util::SharedSplitMix64;

mod checkout;
mod lanes;
#[cfg(all(test, connhealth_loom))]
mod loom_models;
mod maintenance;
#[cfg(test)]
mod test_support;
#[cfg(all(test, not(connhealth_loom)))]
mod tests;
mod waiters;

use self::lanes::{lane_count, Lanes, Parked};
pub(crate) use self::maintenance::Maintenance;
use self::waiters::Waiters;
pub(crate) use self::waiters::{Handoff, WaiterId};

/// The pool's settings, fixed at build.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) grow_by: usize,
    pub(crate) idle_timeout: Option<Duration>,
    pub(crate) max_lifetime: Option<Duration>,
    pub(crate) lifetime_jitter: f64,
    pub(crate) get_timeout: Duration,
    pub(crate) evict_interval: Duration,
    pub(crate) ping_after_idle: Option<Duration>,
    pub(crate) watch_idle: bool,
}

/// A connection the pool owns, with the dates it is judged by.
#[derive(Debug)]
pub(crate) struct Live<C> {
    pub(crate) conn: C,
    /// When it must be closed, drawn with jitter at creation.
    expires: Option<CoarseTime>,
}

impl<C> Live<C> {
    /// True when its lifetime is over at `now`.
    pub(crate) fn expired(&self, now: CoarseTime) -> bool {
        self.expires.is_some_and(|at| now >= at)
    }
}

/// An idle connection, in the shared list or a lane.
#[derive(Debug)]
struct Idle<C> {
    live: Live<C>,
    since: CoarseTime,
    /// Registered with the runtime for readiness events by the watcher.
    watched: bool,
}

/// An idle connection taken for a checkout (at once, or handed to a waiter), with what
/// the checkout judges it by: a connection that sat in a lane or the idle list comes
/// with its idle time, so that its lifetime and `ping_after_idle` apply to it as to any
/// other.
#[derive(Debug)]
pub(crate) struct Checkout<C> {
    pub(crate) live: Live<C>,
    /// How long it sat idle before it was taken.
    pub(crate) idle_for: Duration,
    /// Its lifetime was over when it was taken.
    pub(crate) expired: bool,
}

impl<C> Idle<C> {
    /// Takes it for a checkout at `now`.
    fn taken(self, now: CoarseTime) -> Checkout<C> {
        Checkout {
            expired: self.live.expired(now),
            idle_for: now.since(self.since),
            live: self.live,
        }
    }

    /// Checks it out at `now`.
    fn checkout(self, now: CoarseTime) -> Step<C> {
        Step::Idle(self.taken(now))
    }
}

#[derive(Debug)]
struct Shared<C> {
    /// Returned connections; the most recently returned at the back, taken first, so
    /// the surplus ages at the front where the evictor finds it.
    idle: VecDeque<Idle<C>>,
    waiters: Waiters<C>,
    /// The background task, woken when the queue stops being empty: it keeps one timer
    /// for the oldest waiter's deadline, so that no waiting `get` arms a timer of its own.
    maintainer: Option<Waker>,
    /// A connection was closed: the background task tops `min_idle` up at once.
    top_up: bool,
    /// Permits taken against `max_size`: open connections plus connects in flight.
    size: usize,
    connecting: usize,
    requests: u64,
    /// Connections handed out (idle, handed off or newly opened), before the checks
    /// that `Counters::rejected` counts.
    checkouts: u64,
    wait_count: u64,
    /// The waits that ended, in nanoseconds.
    wait_nanos: u64,
}

/// The next step of a checkout.
#[derive(Debug)]
pub(crate) enum Step<C> {
    /// An idle connection, to judge.
    Idle(Checkout<C>),
    /// A permit is ours: connect.
    Connect,
    /// Queued as `waiter`, the task's waker registered: wait for a hand-off, until
    /// `deadline`.
    Wait {
        waiter: WaiterId,
        deadline: CoarseTime,
    },
    Closed,
}

impl<C> Shared<C> {
    /// Gives an idle connection to the oldest waiter, else to the idle list, where it
    /// takes its place by the time it was returned (the list stays oldest first).
    /// Returns the waiter's waker, to wake once unlocked.
    fn give(&mut self, idle: Idle<C>, now: CoarseTime) -> Option<Waker> {
        match self.waiters.next() {
            Some(id) => self.deliver(id, Handoff::Conn(idle.taken(now)), now),
            None => {
                let at = self.idle.partition_point(|other| other.since <= idle.since);
                self.idle.insert(at, idle);
                None
            }
        }
    }
}

/// Releases the lock, then wakes `waker` if there is one: waking may take the runtime's
/// own locks and unpark a thread, so it never happens under the pool's lock.
fn wake_unlocked<C>(s: MutexGuard<'_, Shared<C>>, waker: Option<Waker>) {
    drop(s);
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Keeps a lock on a cache line of its own: the `Arc` count beside the shared lock
/// changes on every checkout and return too, and two cores would fight over one line
/// for both; each lane is written by its own CPU only.
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

pub(crate) struct Inner<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    shared: CachePadded<Mutex<Shared<M::Connection>>>,
    lanes: Lanes<M::Connection>,
    /// Mirrors "the waiters' queue is not empty", written under the shared lock. While
    /// it is set, checkouts and returns skip the lanes and go through the queue, first
    /// in, first out.
    queued: AtomicBool,
    /// Set by `close`, under the shared lock: read under that lock like the rest of the
    /// shared state, and by a return under its lane's lock (`close` sets it before it
    /// empties the lanes, so that no connection is left in a lane after a close).
    closed: AtomicBool,
    /// The background task will look at the idle connections again: it has a timer set
    /// for the next one to register with the watcher, or was woken to set one. Cleared
    /// by the task when every idle connection is registered and no checkout came for a
    /// while, so that a quiet pool schedules no wake-ups; set again by the next return.
    /// Written under the shared lock.
    watch_armed: AtomicBool,
    pub(crate) counters: Counters,
    /// Draws the lifetime jitter.
    jitter: SharedSplitMix64,
    /// How long a queued checkout waits: `get_timeout` plus the coarse clock's
    /// resolution, so that a wait never ends early.
    queue_wait: Duration,
}

impl<M: Manager> std::fmt::Debug for Inner<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Inner<M> {
    pub(crate) fn new(manager: M, config: Config) -> Inner<M> {
        let lanes = lane_count(config.max_size);
        Inner::with_lanes(manager, config, lanes)
    }

    /// A pool with `lanes` lanes (a power of two), whatever the machine: for tests and
    /// models that need more lanes than CPUs, or a pool of one connection with two.
    fn with_lanes(manager: M, config: Config, lanes: usize) -> Inner<M> {
        Inner {
            manager,
            shared: CachePadded(Mutex::new(Shared {
                // Room for the usual pool up front; a larger one grows its list once.
                idle: VecDeque::with_capacity(config.max_size.min(1024)),
                waiters: Waiters::new(),
                maintainer: None,
                top_up: false,
                size: 0,
                connecting: 0,
                requests: 0,
                checkouts: 0,
                wait_count: 0,
                wait_nanos: 0,
            })),
            lanes: Lanes::new(lanes),
            queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watch_armed: AtomicBool::new(false),
            queue_wait: config.get_timeout.saturating_add(coarse_resolution()),
            config,
            counters: Counters::default(),
            jitter: SharedSplitMix64::new(),
        }
    }

    /// Locks the shared state (poisoning recovered: see [`crate::sync`]).
    fn lock(&self) -> MutexGuard<'_, Shared<M::Connection>> {
        self.shared.0.lock()
    }

    /// Wraps a fresh connection with its expiry: `max_lifetime`, spread by the jitter
    /// (uniform in ±jitter), so that a cohort born together does not die together.
    pub(crate) fn live(&self, conn: M::Connection) -> Live<M::Connection> {
        let expires = self.config.max_lifetime.and_then(|lifetime| {
            let spread = 2.0 * self.jitter.unit() - 1.0; // [-1, 1)
            let factor = (1.0 + self.config.lifetime_jitter * spread).max(0.0);
            // A lifetime too long to represent is no lifetime, not an overflow.
            let lifetime = Duration::try_from_secs_f64(lifetime.as_secs_f64() * factor).ok()?;
            Some(coarse_now().add(lifetime))
        });
        Live { conn, expires }
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        // Rejections are read first: each follows its checkout, so the checkouts read
        // next include every one of them, and `successes` never counts a rejection
        // whose checkout it has not seen.
        let rejected = self.counters.rejected.load(Relaxed);
        {
            let s = self.lock();
            let (parked, lane_checkouts) = self.lanes.tally();
            stats.size = s.size;
            stats.idle = s.idle.len() + parked;
            stats.connecting = s.connecting;
            // A checkout served by a lane is a request and a checkout at once.
            stats.requests = s.requests + lane_checkouts;
            stats.successes = (s.checkouts + lane_checkouts).saturating_sub(rejected);
            stats.wait_count = s.wait_count;
            stats.wait_time = Duration::from_nanos(s.wait_nanos);
        }
        self.counters.fill(&mut stats);
        stats
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Relaxed)
    }

    /// Notes, under the shared lock, that a connection was closed; returns the
    /// background task's waker when it should top `min_idle` up (to be woken once the
    /// lock is released).
    fn closed_one(&self, s: &mut Shared<M::Connection>) -> Option<Waker> {
        if self.config.min_idle == 0 || self.is_closed() || s.top_up {
            return None;
        }
        s.top_up = true;
        s.maintainer.clone()
    }

    /// Whether checkouts and returns may use the lanes: not while anyone waits, so that
    /// a return goes to the oldest waiter and no newcomer takes a connection from a lane
    /// ahead of it.
    fn lanes_open(&self) -> bool {
        !self.queued.load(Relaxed)
    }

    /// Mirrors whether waiters queue into `queued`, under the shared lock; written only
    /// when it changes, so that a busy pool does not move its line between cores.
    fn publish_queue(&self, s: &Shared<M::Connection>) {
        let queued = !s.waiters.is_empty();
        if self.queued.load(Relaxed) != queued {
            self.queued.store(queued, Relaxed);
        }
    }

    /// Arms the watcher for a connection just made idle, under the shared lock: returns
    /// the background task's waker when it had gone quiet.
    fn arm_watcher(&self, s: &Shared<M::Connection>) -> Option<Waker> {
        if !self.config.watch_idle || self.watch_armed.load(Relaxed) {
            return None;
        }
        self.watch_armed.store(true, Relaxed);
        s.maintainer.clone()
    }

    /// Returns a connection: to this CPU's lane when no one waits and the lane is free,
    /// else to the oldest waiter, else to the idle list. It is closed instead when
    /// `discard` is set (unusable, or returned during a panic), when its lifetime is
    /// over (checked here so that an always-busy connection expires too), or when the
    /// pool is closed. `fresh` marks a connect that just finished.
    pub(crate) fn put(&self, live: Live<M::Connection>, discard: bool, fresh: bool) {
        let now = coarse_now();
        let expired = live.expired(now);
        if discard || expired || fresh || !self.lanes_open() {
            return self.put_shared(live, discard, expired, fresh, now);
        }
        let idle = Idle {
            live,
            since: now,
            watched: false,
        };
        match self.lanes.park(idle, &self.closed) {
            Ok(Parked { lane, displaced }) => {
                if let Some(older) = displaced {
                    self.unpark(older, now);
                }
                self.parked(lane, now);
            }
            Err(idle) => self.put_shared(idle.live, false, false, false, now),
        }
    }

    /// Gives an idle connection to the oldest waiter or the idle list (arming the
    /// watcher), then releases the lock and wakes whom that concerns.
    fn give_unlocked(
        &self,
        mut s: MutexGuard<'_, Shared<M::Connection>>,
        idle: Idle<M::Connection>,
        now: CoarseTime,
    ) {
        let waker = match s.give(idle, now) {
            Some(waiter) => Some(waiter),
            // Idle now: the background task registers it with the watcher after
            // WATCH_AFTER, and needs telling if it had nothing to watch.
            None => self.arm_watcher(&s),
        };
        self.publish_queue(&s);
        wake_unlocked(s, waker);
    }

    /// Returns a connection through the shared lock: see [`Inner::put`].
    fn put_shared(
        &self,
        live: Live<M::Connection>,
        discard: bool,
        expired: bool,
        fresh: bool,
        now: CoarseTime,
    ) {
        let mut s = self.lock();
        if fresh {
            s.connecting -= 1;
        }
        if discard || expired || self.is_closed() {
            drop(s);
            if expired && !discard {
                Counters::bump(&self.counters.lifetime_closed, 1);
            }
            self.close_then_free(live);
            return;
        }
        let idle = Idle {
            live,
            since: now,
            watched: false,
        };
        self.give_unlocked(s, idle, now);
    }

    /// Closes a connection, then frees its permit. Closing runs the connection's `Drop`,
    /// user code: should it panic, the permit is freed all the same, on the way out.
    fn close_then_free<T>(&self, conn: T) {
        let _permit = FreePermit(self);
        drop(conn);
    }

    /// Closes a connection whose permit the caller keeps, to take or open another with:
    /// should its `Drop` panic, the permit is freed on the way out.
    pub(crate) fn close_keeping_permit<T>(&self, conn: T) {
        let permit = FreePermit(self);
        drop(conn);
        std::mem::forget(permit);
    }

    /// Frees a permit (a connection closed, or a connect that failed or was cancelled,
    /// when `connecting`), and hands it to the oldest waiter, who will connect.
    pub(crate) fn release_permit(&self, connecting: bool) {
        let mut s = self.lock();
        if connecting {
            s.connecting -= 1;
        }
        let next = if self.is_closed() {
            None
        } else {
            s.waiters.next()
        };
        self.publish_queue(&s);
        match next {
            Some(id) => {
                // The permit passes to the waiter as a connect in flight.
                s.connecting += 1;
                let waker = s.deliver(id, Handoff::Permit, coarse_now());
                wake_unlocked(s, waker);
            }
            None => {
                s.size -= 1;
                let top_up = self.closed_one(&mut s);
                wake_unlocked(s, top_up);
            }
        }
    }

    /// Closes the pool: waiters get `Closed`, idle connections (parked ones too) are
    /// closed, later returns are closed. Idempotent.
    pub(crate) fn close(&self) {
        let now = coarse_now();
        let mut wakers = Vec::new();
        let (idle, parked) = {
            let mut s = self.lock();
            // Before the lanes are drained: see `Lanes::park`.
            self.closed.store(true, Relaxed);
            // The background task exits on its next poll: make it now.
            wakers.extend(s.maintainer.take());
            let idle = std::mem::take(&mut s.idle);
            let parked = self.lanes.drain();
            s.size -= idle.len() + parked.len();
            s.close_waiters(now, &mut wakers);
            self.publish_queue(&s);
            (idle, parked)
        };
        wakers.into_iter().for_each(Waker::wake);
        drop(idle);
        drop(parked);
    }

    /// Opens one connection in the background, in a permit already counted as connecting,
    /// bounded by `get_timeout` so that a stalled connect cannot hold the permit forever.
    /// Off a tokio runtime (a `get` polled by another executor) there is nowhere to run
    /// it: the permit is freed, and the caller's own connect is all the growth.
    pub(crate) fn spawn_connect(self: &Arc<Self>) {
        let permit = ConnectPermit::new(Arc::clone(self));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
            let result =
                tokio::time::timeout(inner.config.get_timeout, inner.manager.connect()).await;
            match result {
                Ok(Ok(conn)) => {
                    permit.disarm();
                    let live = inner.live(conn);
                    inner.put(live, false, true);
                }
                Ok(Err(err)) => {
                    Counters::bump(&inner.counters.connect_errors, 1);
                    tracing::debug!(error = %err, "pool: background connect failed");
                }
                Err(_) => {
                    Counters::bump(&inner.counters.connect_errors, 1);
                    tracing::debug!("pool: background connect timed out");
                }
            }
        });
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        // The last handle is gone: wake the background task, so that it finds its weak
        // reference dead and exits now rather than at its next timer.
        let shared = self.shared.0.get_mut();
        if let Some(maintainer) = shared.maintainer.take() {
            maintainer.wake();
        }
    }
}

/// A permit counted as a connect in flight. Dropped armed (the connect failed, timed out,
/// or its future was dropped), it frees the permit and hands it on.
#[derive(Debug)]
pub(crate) struct ConnectPermit<M: Manager> {
    inner: Option<Arc<Inner<M>>>,
}

impl<M: Manager> ConnectPermit<M> {
    pub(crate) fn new(inner: Arc<Inner<M>>) -> ConnectPermit<M> {
        ConnectPermit { inner: Some(inner) }
    }

    pub(crate) fn disarm(mut self) {
        self.inner = None;
    }
}

impl<M: Manager> Drop for ConnectPermit<M> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.release_permit(true);
        }
    }
}

/// Frees the permit of a closed connection when dropped: see [`Inner::close_then_free`].
struct FreePermit<'a, M: Manager>(&'a Inner<M>);

impl<M: Manager> Drop for FreePermit<'_, M> {
    fn drop(&mut self) {
        self.0.release_permit(false);
    }
}
