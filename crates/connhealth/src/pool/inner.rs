//! The pool's shared state, and the background task that keeps it healthy.
//!
//! One `std::sync::Mutex` guards everything that must change together: the idle
//! connections, the count of slots taken against `max_size`, and the queue of waiters. A
//! checkout on the fast path takes it once (pop an idle connection), a return takes it
//! once (push it back, or hand it to the oldest waiter). Nothing else is touched: no
//! atomics but the `Arc` clone a [`Pooled`](super::Pooled) holds (the counters it moves
//! are kept under the lock it already holds), no precise clock, no timer, no allocation.
//! A checkout that must queue registers its waker under that same lock, so a wait costs
//! one more lock, when the hand-off is taken. The lock is never held across user code or
//! an await, except for `Manager::poll_closed`, which is a readiness poll (see its
//! documentation); a poisoned lock is recovered, because every critical section leaves
//! the state whole before it can panic.
//!
//! Waiters queue in arrival order. A returned connection, or a slot freed by a closed
//! one, is put straight into the oldest waiter's slot under the lock, and its task woken
//! after the lock is released, so a newcomer can never overtake it. Waiter slots live in
//! a vector that is reused, so even the contended path allocates nothing once the queue
//! has reached its longest. A waiter that is dropped marks its slot cancelled (skipped and
//! freed by the next hand-off or sweep), or hands on whatever already reached it
//! ([`Waiting`]'s `Drop`). Every change to a slot happens under the lock, so a hand-off
//! cannot race a cancellation.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::stats::{Counters, Stats};
use super::Manager;
use crate::sys::clock::{coarse_now, coarse_resolution, CoarseTime};

/// How long a connection sits idle before the watcher registers for its readiness
/// events. Connections returned and taken again within this time (the busy ones) never
/// meet the watcher; the ones that stay idle are watched within twice this time.
pub(crate) const WATCH_AFTER: Duration = Duration::from_millis(20);

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

#[derive(Debug)]
struct Idle<C> {
    live: Live<C>,
    since: CoarseTime,
    /// Registered with the runtime for readiness events by the watcher.
    watched: bool,
}

/// What reaches a waiter: a connection, or a slot to open one with.
#[derive(Debug)]
pub(crate) enum Handoff<C> {
    Conn(Live<C>),
    Slot,
}

/// Where a waiter stands.
#[derive(Debug)]
enum WaitState<C> {
    Free,
    Queued,
    /// Its future was dropped; it stays in the queue until a hand-off or a sweep meets it.
    Cancelled,
    /// The pool was closed under it.
    Closed,
    /// Its deadline passed (set by the background task, which took it off the queue).
    TimedOut,
    Delivered(Handoff<C>),
}

/// How a wait ended.
#[derive(Debug)]
pub(crate) enum Waited<C> {
    Handoff(Handoff<C>),
    Closed,
    TimedOut,
}

#[derive(Debug)]
struct WaitSlot<C> {
    state: WaitState<C>,
    waker: Option<Waker>,
    /// When the wait began.
    queued: CoarseTime,
    /// When the wait gives up: `get_timeout` after it began, plus one tick of the
    /// coarse clock, so that it never gives up early.
    deadline: CoarseTime,
}

#[derive(Debug)]
struct Shared<C> {
    /// Returned connections; the most recently returned at the back, taken first, so
    /// the surplus ages at the front where the evictor finds it.
    idle: VecDeque<Idle<C>>,
    /// Waiter slot numbers, oldest first.
    queue: VecDeque<usize>,
    slots: Vec<WaitSlot<C>>,
    free_slots: Vec<usize>,
    /// Queue length at which cancelled waiters are swept out.
    sweep_at: usize,
    /// The background task, woken when the queue stops being empty: it keeps one timer
    /// for the oldest waiter's deadline, so that no waiting `get` arms a timer of its own.
    maintainer: Option<Waker>,
    /// A connection was closed: the background task tops `min_idle` up at once.
    top_up: bool,
    /// The background task will look at the idle connections again: it has a timer set
    /// for the next one to register with the watcher, or was woken to set one. Cleared
    /// by the task when every idle connection is registered and no checkout came for a
    /// while, so that a quiet pool schedules no wake-ups; set again by the next return.
    watch_armed: bool,
    /// Slots taken against `max_size`: open connections plus connects in flight.
    size: usize,
    connecting: usize,
    requests: u64,
    /// Connections handed out (idle, handed off or newly opened), before the checks
    /// that `Counters::rejected` counts.
    checkouts: u64,
    wait_count: u64,
    /// The waits that ended, in nanoseconds.
    wait_nanos: u64,
    closed: bool,
}

/// The next step of a checkout.
#[derive(Debug)]
pub(crate) enum Step<C> {
    /// An idle connection, idle for this many nanoseconds, and whether its lifetime is
    /// over.
    Idle(Live<C>, u64, bool),
    /// A slot is ours: connect.
    Connect,
    /// Queued in this waiter slot, the task's waker registered: wait for a hand-off,
    /// until this deadline.
    Wait(usize, CoarseTime),
    Closed,
}

impl<C> Shared<C> {
    /// Pops the oldest live waiter, freeing the cancelled ones ahead of it.
    fn next_waiter(&mut self) -> Option<usize> {
        while let Some(id) = self.queue.pop_front() {
            if matches!(self.slots[id].state, WaitState::Queued) {
                return Some(id);
            }
            self.free(id);
        }
        None
    }

    /// Puts `handoff` in waiter `id`'s slot, and counts its wait as over at `now`;
    /// returns the waker to wake once unlocked.
    fn deliver(&mut self, id: usize, handoff: Handoff<C>, now: CoarseTime) -> Option<Waker> {
        let slot = &mut self.slots[id];
        slot.state = WaitState::Delivered(handoff);
        let (waker, queued) = (slot.waker.take(), slot.queued);
        self.wait_ended(queued, now);
        waker
    }

    /// Adds a wait that began at `queued` and ended at `now` to `wait_time`.
    fn wait_ended(&mut self, queued: CoarseTime, now: CoarseTime) {
        self.wait_nanos = self.wait_nanos.saturating_add(now.nanos_since(queued));
    }

    /// Notes that a connection was closed; returns the background task's waker when it
    /// should top `min_idle` up (to be woken once the lock is released).
    fn closed_one(&mut self, min_idle: usize) -> Option<Waker> {
        if min_idle == 0 || self.closed || self.top_up {
            return None;
        }
        self.top_up = true;
        self.maintainer.clone()
    }

    fn free(&mut self, id: usize) {
        let slot = &mut self.slots[id];
        slot.state = WaitState::Free;
        slot.waker = None;
        self.free_slots.push(id);
    }

    /// Frees the cancelled waiters' slots and drops them from the queue.
    fn sweep(&mut self) {
        let mut queue = std::mem::take(&mut self.queue);
        queue.retain(|&id| {
            let live = matches!(self.slots[id].state, WaitState::Queued);
            if !live {
                self.free(id);
            }
            live
        });
        self.queue = queue;
        self.sweep_at = (self.queue.len() * 2).max(16);
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

/// Keeps the lock on a cache line of its own: the `Arc` count beside it changes on every
/// checkout and return too, and two cores would fight over one line for both.
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

pub(crate) struct Inner<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    shared: CachePadded<Mutex<Shared<M::Connection>>>,
    pub(crate) counters: Counters,
    seed: AtomicU64,
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
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Inner {
            manager,
            shared: CachePadded(Mutex::new(Shared {
                idle: VecDeque::with_capacity(config.max_size),
                queue: VecDeque::new(),
                slots: Vec::new(),
                free_slots: Vec::new(),
                sweep_at: 16,
                maintainer: None,
                top_up: false,
                watch_armed: false,
                size: 0,
                connecting: 0,
                requests: 0,
                checkouts: 0,
                wait_count: 0,
                wait_nanos: 0,
                closed: false,
            })),
            queue_wait: config.get_timeout.saturating_add(coarse_resolution()),
            config,
            counters: Counters::default(),
            seed: AtomicU64::new(seed),
        }
    }

    /// Locks the shared state. A panic elsewhere cannot leave it half-changed (no user
    /// code runs under the lock but a readiness poll, and each section updates its
    /// fields before anything that can panic), so poisoning is ignored: one panicking
    /// task must not take the pool down for every other.
    fn lock(&self) -> MutexGuard<'_, Shared<M::Connection>> {
        self.shared.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wraps a fresh connection with its expiry: `max_lifetime`, spread by the jitter
    /// (uniform in ±jitter), so that a cohort born together does not die together.
    pub(crate) fn live(&self, conn: M::Connection) -> Live<M::Connection> {
        let expires = self.config.max_lifetime.and_then(|lifetime| {
            let spread = 2.0 * self.unit_random() - 1.0; // [-1, 1)
            let factor = (1.0 + self.config.lifetime_jitter * spread).max(0.0);
            // A lifetime too long to represent is no lifetime, not an overflow.
            let lifetime = Duration::try_from_secs_f64(lifetime.as_secs_f64() * factor).ok()?;
            Some(coarse_now().add(lifetime))
        });
        Live { conn, expires }
    }

    /// A uniform number in [0, 1): splitmix64 over a per-pool counter, no lock.
    fn unit_random(&self) -> f64 {
        let mut z = self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        // Rejections are read first: each follows its checkout, so the checkouts read
        // next include every one of them, and `successes` never counts a rejection
        // whose checkout it has not seen.
        let rejected = self.counters.rejected.load(Relaxed);
        {
            let s = self.lock();
            stats.size = s.size;
            stats.idle = s.idle.len();
            stats.connecting = s.connecting;
            stats.requests = s.requests;
            stats.successes = s.checkouts.saturating_sub(rejected);
            stats.wait_count = s.wait_count;
            stats.wait_time = Duration::from_nanos(s.wait_nanos);
        }
        self.counters.fill(&mut stats);
        stats
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The first step of a checkout: an idle connection, else a slot to connect with
    /// (counted before the connect starts, so `max_size` holds while connects stall),
    /// else a place in the queue, with a deadline `get_timeout` from now. When the pool
    /// must grow, `grow_by - 1` extra slots are reserved for background connects. A
    /// queued checkout registers `cx`'s waker in the same critical section.
    pub(crate) fn acquire(self: &Arc<Self>, cx: &Context<'_>) -> Step<M::Connection> {
        let now = coarse_now();
        let mut s = self.lock();
        s.requests += 1;
        if s.closed {
            return Step::Closed;
        }
        if let Some(idle) = s.idle.pop_back() {
            s.checkouts += 1;
            drop(s);
            let expired = idle.live.expired(now);
            return Step::Idle(idle.live, now.nanos_since(idle.since), expired);
        }
        if s.size < self.config.max_size {
            let extra = (self.config.grow_by - 1).min(self.config.max_size - s.size - 1);
            s.size += 1 + extra;
            s.connecting += 1 + extra;
            drop(s);
            for _ in 0..extra {
                self.spawn_connect();
            }
            return Step::Connect;
        }
        self.enqueue(s, now, cx)
    }

    /// Queues a checkout, oldest first. Kept out of line: the fast path never comes here.
    #[cold]
    #[inline(never)]
    fn enqueue(
        &self,
        mut s: MutexGuard<'_, Shared<M::Connection>>,
        now: CoarseTime,
        cx: &Context<'_>,
    ) -> Step<M::Connection> {
        s.wait_count += 1;
        if s.queue.len() >= s.sweep_at {
            // Waiters that were dropped stay queued until a hand-off meets them; sweep
            // them so that an exhausted pool cannot grow its queue without bound.
            s.sweep();
        }
        let deadline = now.add(self.queue_wait);
        let id = match s.free_slots.pop() {
            Some(id) => id,
            None => {
                s.slots.push(WaitSlot {
                    state: WaitState::Free,
                    waker: None,
                    queued: now,
                    deadline,
                });
                s.slots.len() - 1
            }
        };
        let slot = &mut s.slots[id];
        slot.state = WaitState::Queued;
        slot.queued = now;
        slot.deadline = deadline;
        match &slot.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => slot.waker = Some(cx.waker().clone()),
        }
        // Deadlines grow along the queue (same timeout, later start), so the background
        // task's one timer, set for the oldest waiter, needs news only when the queue
        // stops being empty.
        let first = s.queue.is_empty();
        s.queue.push_back(id);
        let maintainer = if first { s.maintainer.clone() } else { None };
        wake_unlocked(s, maintainer);
        Step::Wait(id, deadline)
    }

    /// Times out the queued waiters whose deadline has passed, and returns the earliest
    /// deadline left (coarse clock). Registers `cx` to hear of a new first waiter, and
    /// sets `top_up` when a closed connection asked for `min_idle` to be topped up.
    /// Deadlines grow along the queue, so only its front is looked at.
    fn expire_waiters(&self, cx: &mut Context<'_>, top_up: &mut bool) -> Option<CoarseTime> {
        let now = coarse_now();
        let mut wakers = Vec::new();
        let next = {
            let mut s = self.lock();
            *top_up |= std::mem::take(&mut s.top_up);
            match &s.maintainer {
                Some(waker) if waker.will_wake(cx.waker()) => {}
                _ => s.maintainer = Some(cx.waker().clone()),
            }
            loop {
                let Some(&id) = s.queue.front() else {
                    break None;
                };
                let slot = &mut s.slots[id];
                match slot.state {
                    WaitState::Queued if slot.deadline > now => break Some(slot.deadline),
                    WaitState::Queued => {
                        slot.state = WaitState::TimedOut;
                        wakers.extend(slot.waker.take());
                        let queued = slot.queued;
                        s.queue.pop_front();
                        s.wait_ended(queued, now);
                    }
                    _ => {
                        s.queue.pop_front();
                        s.free(id);
                    }
                }
            }
        };
        wakers.into_iter().for_each(Waker::wake);
        next
    }

    /// After a checked-out connection was found unusable and dropped: its slot is still
    /// ours. Take another idle connection (giving the slot back), else keep the slot and
    /// connect.
    pub(crate) fn reacquire(&self, now: CoarseTime) -> Step<M::Connection> {
        let mut s = self.lock();
        if s.closed {
            s.size -= 1;
            return Step::Closed;
        }
        if let Some(idle) = s.idle.pop_back() {
            // Idle connections exist only while no live waiter does, so the slot given
            // back here has no one to go to.
            s.size -= 1;
            s.checkouts += 1;
            let top_up = s.closed_one(self.config.min_idle);
            wake_unlocked(s, top_up);
            let expired = idle.live.expired(now);
            return Step::Idle(idle.live, now.nanos_since(idle.since), expired);
        }
        s.connecting += 1;
        Step::Connect
    }

    /// Counts `n` slots as connects in flight (the `min_idle` connects at build).
    pub(crate) fn reserve_connects(&self, n: usize) {
        let mut s = self.lock();
        s.size += n;
        s.connecting += n;
    }

    /// A connect for a checkout succeeded: the slot now holds an open connection.
    pub(crate) fn connected(&self) {
        let mut s = self.lock();
        s.connecting -= 1;
        s.checkouts += 1;
    }

    /// Returns a connection: to the oldest waiter, else to the idle list. It is closed
    /// instead when `discard` is set (unusable, or returned during a panic), when its
    /// lifetime is over (checked here so that an always-busy connection expires too),
    /// or when the pool is closed. `fresh` marks a connect that just finished.
    pub(crate) fn put(&self, live: Live<M::Connection>, discard: bool, fresh: bool) {
        let now = coarse_now();
        let expired = live.expired(now);
        let mut s = self.lock();
        if fresh {
            s.connecting -= 1;
        }
        if discard || expired || s.closed {
            drop(s);
            if expired && !discard {
                Counters::bump(&self.counters.lifetime_closed, 1);
            }
            drop(live);
            self.release_slot(false);
            return;
        }
        match s.next_waiter() {
            Some(id) => {
                let waker = s.deliver(id, Handoff::Conn(live), now);
                wake_unlocked(s, waker);
            }
            None => {
                s.idle.push_back(Idle {
                    live,
                    since: now,
                    watched: false,
                });
                if self.config.watch_idle && !s.watch_armed {
                    // The background task has nothing to watch and no timer set:
                    // tell it of this connection, to register it after WATCH_AFTER.
                    s.watch_armed = true;
                    let maintainer = s.maintainer.clone();
                    wake_unlocked(s, maintainer);
                }
            }
        }
    }

    /// Frees a slot (a connection closed, or a connect that failed or was cancelled,
    /// when `connecting`), and hands it to the oldest waiter, who will connect.
    pub(crate) fn release_slot(&self, connecting: bool) {
        let mut s = self.lock();
        if connecting {
            s.connecting -= 1;
        }
        let next = if s.closed { None } else { s.next_waiter() };
        match next {
            Some(id) => {
                // The slot passes to the waiter as a connect in flight.
                s.connecting += 1;
                let waker = s.deliver(id, Handoff::Slot, coarse_now());
                wake_unlocked(s, waker);
            }
            None => {
                s.size -= 1;
                let top_up = s.closed_one(self.config.min_idle);
                wake_unlocked(s, top_up);
            }
        }
    }

    /// Closes the pool: waiters get `Closed`, idle connections are closed, later returns
    /// are closed. Idempotent.
    pub(crate) fn close(&self) {
        let now = coarse_now();
        let mut wakers = Vec::new();
        let idle = {
            let mut s = self.lock();
            s.closed = true;
            // The background task exits on its next poll: make it now.
            wakers.extend(s.maintainer.take());
            let idle = std::mem::take(&mut s.idle);
            s.size -= idle.len();
            while let Some(id) = s.queue.pop_front() {
                let slot = &mut s.slots[id];
                if matches!(slot.state, WaitState::Queued) {
                    slot.state = WaitState::Closed;
                    wakers.extend(slot.waker.take());
                    let queued = slot.queued;
                    s.wait_ended(queued, now);
                } else {
                    s.free(id);
                }
            }
            idle
        };
        wakers.into_iter().for_each(Waker::wake);
        drop(idle);
    }

    /// Opens one connection in the background, in a slot already counted as connecting,
    /// bounded by `get_timeout` so that a stalled connect cannot hold the slot forever.
    pub(crate) fn spawn_connect(self: &Arc<Self>) {
        let inner = Arc::clone(self);
        let slot = ConnectSlot::new(Arc::clone(self));
        tokio::spawn(async move {
            let result =
                tokio::time::timeout(inner.config.get_timeout, inner.manager.connect()).await;
            match result {
                Ok(Ok(conn)) => {
                    slot.disarm();
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

    /// Closes idle connections past their lifetime, and those idle longer than
    /// `idle_timeout` beyond `min_idle` (oldest first).
    fn evict(&self) {
        let now = coarse_now();
        let mut closed = Vec::new();
        {
            let mut s = self.lock();
            let mut i = 0;
            while i < s.idle.len() {
                if s.idle[i].live.expired(now) {
                    closed.extend(s.idle.remove(i));
                } else {
                    i += 1;
                }
            }
            let lifetime = closed.len();
            if let Some(timeout) = self.config.idle_timeout {
                while s.idle.len() > self.config.min_idle
                    && s.idle
                        .front()
                        .is_some_and(|idle| now.since(idle.since) >= timeout)
                {
                    closed.extend(s.idle.pop_front());
                }
            }
            s.size -= closed.len();
            Counters::bump(&self.counters.lifetime_closed, lifetime as u64);
            Counters::bump(&self.counters.idle_closed, (closed.len() - lifetime) as u64);
        }
        drop(closed);
    }

    /// Polls the idle connections for a close by the peer. Those idle for
    /// [`WATCH_AFTER`] are registered first; each registered one is asked
    /// `Manager::poll_closed`, which leaves the task's waker with the runtime, so a FIN
    /// or RST wakes the task at once. Returns how many were closed, and when to look
    /// again: when the next unregistered one is due, else, while checkouts go on (seen
    /// by `requests` against `seen`), [`WATCH_AFTER`] from now, so that a busy pool does
    /// not wake the task on every return. None: the pool is quiet, and only a return
    /// wakes the task again.
    fn poll_idle(&self, cx: &mut Context<'_>, seen: &mut u64) -> (usize, Option<CoarseTime>) {
        let now = coarse_now();
        let mut dead = Vec::new();
        let mut next: Option<CoarseTime> = None;
        {
            let mut s = self.lock();
            let mut i = 0;
            while i < s.idle.len() {
                let idle = &mut s.idle[i];
                if !idle.watched {
                    if now.since(idle.since) >= WATCH_AFTER {
                        idle.watched = true;
                    } else {
                        let due = idle.since.add(WATCH_AFTER);
                        next = Some(next.map_or(due, |at| at.min(due)));
                    }
                }
                // A panicking poll_closed must not end the background task, which also
                // times waiters out: count the connection as closed.
                let closed = idle.watched
                    && std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        self.manager.poll_closed(&mut idle.live.conn, cx).is_ready()
                    }))
                    .unwrap_or(true);
                if closed {
                    // Counted at once: the next poll_closed is user code and may panic.
                    dead.extend(s.idle.remove(i));
                    s.size -= 1;
                } else {
                    i += 1;
                }
            }
            if next.is_none() && s.requests != *seen {
                next = Some(now.add(WATCH_AFTER));
            }
            *seen = s.requests;
            s.watch_armed = next.is_some();
        }
        Counters::bump(&self.counters.peer_closed, dead.len() as u64);
        (dead.len(), next)
    }

    /// Opens connections in the background until idle plus connecting reaches
    /// `min_idle`, within `max_size`.
    fn replenish(self: &Arc<Self>) {
        let want = {
            let mut s = self.lock();
            if s.closed {
                return;
            }
            let have = s.idle.len() + s.connecting;
            let want = self
                .config
                .min_idle
                .saturating_sub(have)
                .min(self.config.max_size - s.size);
            s.size += want;
            s.connecting += want;
            want
        };
        for _ in 0..want {
            self.spawn_connect();
        }
    }
}

impl<M: Manager> Drop for Inner<M> {
    fn drop(&mut self) {
        // The last handle is gone: wake the background task, so that it finds its weak
        // reference dead and exits now rather than at its next timer.
        let shared = self
            .shared
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(maintainer) = shared.maintainer.take() {
            maintainer.wake();
        }
    }
}

/// `timeout` from now; a huge timeout means "never", not an overflow.
pub(crate) fn deadline_after(timeout: Duration) -> Instant {
    deadline_from(Instant::now(), timeout)
}

fn deadline_from(now: Instant, timeout: Duration) -> Instant {
    now.checked_add(timeout)
        .unwrap_or_else(|| now + Duration::from_secs(30 * 365 * 86_400))
}

/// A slot counted as a connect in flight. Dropped armed (the connect failed, timed out,
/// or its future was dropped), it frees the slot and hands it on.
#[derive(Debug)]
pub(crate) struct ConnectSlot<M: Manager> {
    inner: Option<Arc<Inner<M>>>,
}

impl<M: Manager> ConnectSlot<M> {
    pub(crate) fn new(inner: Arc<Inner<M>>) -> ConnectSlot<M> {
        ConnectSlot { inner: Some(inner) }
    }

    pub(crate) fn disarm(mut self) {
        self.inner = None;
    }
}

impl<M: Manager> Drop for ConnectSlot<M> {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            inner.release_slot(true);
        }
    }
}

/// A place in the waiters' queue, polled until a hand-off reaches it. Dropped before it
/// took one (a timeout, or the `get` future dropped), it marks its slot cancelled, or
/// passes on a hand-off that already arrived: no connection or slot is lost, and the next
/// waiter is served instead.
#[derive(Debug)]
pub(crate) struct Waiting<'a, M: Manager> {
    inner: &'a Inner<M>,
    id: Option<usize>,
    /// Not yet polled: the waker was registered when the checkout queued, in the same
    /// poll, so the first poll need not look (a hand-off since then woke the task).
    fresh: bool,
}

impl<'a, M: Manager> Waiting<'a, M> {
    /// Waits in slot `id`, queued by [`Inner::acquire`] in this same poll of the task.
    pub(crate) fn new(inner: &'a Inner<M>, id: usize) -> Self {
        Waiting {
            inner,
            id: Some(id),
            fresh: true,
        }
    }

    fn finish(&mut self, outcome: Waited<M::Connection>) -> Poll<Waited<M::Connection>> {
        self.id = None;
        Poll::Ready(outcome)
    }
}

impl<M: Manager> Future for Waiting<'_, M> {
    type Output = Waited<M::Connection>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(id) = self.id else {
            return Poll::Ready(Waited::Closed);
        };
        if std::mem::take(&mut self.fresh) {
            return Poll::Pending;
        }
        let mut s = self.inner.lock();
        let slot = &mut s.slots[id];
        let outcome = match std::mem::replace(&mut slot.state, WaitState::Free) {
            WaitState::Queued => {
                slot.state = WaitState::Queued;
                match &slot.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => slot.waker = Some(cx.waker().clone()),
                }
                return Poll::Pending;
            }
            WaitState::Delivered(handoff) => Waited::Handoff(handoff),
            WaitState::TimedOut => Waited::TimedOut,
            // Closed (or, never, a state a queued waiter cannot be in).
            _ => Waited::Closed,
        };
        // (The wait was counted in `wait_time` when it ended: at the hand-off, the
        // timeout or the close.)
        if matches!(outcome, Waited::Handoff(Handoff::Conn(_))) {
            s.checkouts += 1;
        }
        s.free(id);
        drop(s);
        self.finish(outcome)
    }
}

impl<M: Manager> Drop for Waiting<'_, M> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut s = self.inner.lock();
        let slot = &mut s.slots[id];
        match std::mem::replace(&mut slot.state, WaitState::Free) {
            WaitState::Queued => {
                // Still in the queue: the next hand-off, sweep or expiry frees it.
                slot.state = WaitState::Cancelled;
                slot.waker = None;
            }
            WaitState::Delivered(handoff) => {
                s.free(id);
                drop(s);
                match handoff {
                    Handoff::Conn(live) => self.inner.put(live, false, false),
                    Handoff::Slot => self.inner.release_slot(true),
                }
            }
            _ => s.free(id),
        }
    }
}

/// A tokio timer set for an instant on the coarse clock.
struct CoarseTimer {
    sleep: Pin<Box<Sleep>>,
    armed: Option<CoarseTime>,
}

impl CoarseTimer {
    fn new() -> CoarseTimer {
        CoarseTimer {
            sleep: Box::pin(tokio::time::sleep_until(deadline_after(Duration::MAX))),
            armed: None,
        }
    }

    /// Polls the timer, set to fire by `at`: one still set for that time or earlier is
    /// kept (it fires early, and the caller looks again), so that a busy pool does not
    /// move a timer in the runtime's wheel on every wake-up. The coarse clock may not
    /// have reached `at` when the timer fires: then it is set again, at least a
    /// millisecond on (the timer's resolution), rather than spun on. A timer no longer
    /// polled fires at most once more, and then leaves the runtime's wheel.
    fn poll_at(&mut self, at: CoarseTime, cx: &mut Context<'_>) -> Poll<()> {
        let set_by_then = self.armed.is_some_and(|armed| armed <= at);
        if !set_by_then || self.sleep.is_elapsed() {
            let left = at.since(coarse_now()).max(Duration::from_millis(1));
            self.sleep.as_mut().reset(deadline_after(left));
            self.armed = Some(at);
        }
        self.sleep.as_mut().poll(cx)
    }
}

/// Closes the pool when its background task ends while the pool lives: when the runtime
/// the task runs on shuts down, which takes the task's timers, and the connections' I/O
/// registrations, with it. Gets on another runtime then fail at once with `Closed`
/// rather than wait with no timeout. (At the task's ordinary end the pool is closed or
/// gone already.)
struct CloseOnExit<M: Manager>(Weak<Inner<M>>);

impl<M: Manager> Drop for CloseOnExit<M> {
    fn drop(&mut self) {
        if let Some(inner) = self.0.upgrade() {
            inner.close();
        }
    }
}

/// The pool's one background task: the evictor (every `evict_interval`), the watcher of
/// idle connections (readiness events, plus a timer that registers each one
/// [`WATCH_AFTER`] after its return, stopped while the pool is quiet), and the
/// `min_idle` replenisher. It holds only a weak reference between wake-ups, and exits
/// when the pool is closed or dropped.
pub(crate) struct Maintenance {
    evict: Interval,
    /// One timer for every waiting get, set for the earliest deadline.
    waiters_timer: CoarseTimer,
    watch_timer: CoarseTimer,
}

impl Maintenance {
    /// Makes the task's timers, in the caller's context: on a runtime without its time
    /// driver this panics at once, with tokio's message, rather than later in the task,
    /// unseen.
    pub(crate) fn new(evict_every: Duration) -> Maintenance {
        let mut evict = tokio::time::interval_at(Instant::now() + evict_every, evict_every);
        evict.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Maintenance {
            evict,
            waiters_timer: CoarseTimer::new(),
            watch_timer: CoarseTimer::new(),
        }
    }

    /// Starts the task for `inner`.
    pub(crate) fn spawn<M: Manager>(self, inner: &Arc<Inner<M>>) {
        let weak = Arc::downgrade(inner);
        let watch = inner.config.watch_idle;
        let Maintenance {
            mut evict,
            mut waiters_timer,
            mut watch_timer,
        } = self;
        let on_exit = CloseOnExit(weak.clone());
        tokio::spawn(async move {
            let _on_exit = on_exit;
            let mut seen = 0;
            loop {
                let woke = poll_fn(|cx| {
                    // The strong reference lives only for this poll: between wake-ups the
                    // task holds a weak one, so dropping every Pool drops the pool.
                    let Some(inner) = weak.upgrade() else {
                        return Poll::Ready(None);
                    };
                    if inner.is_closed() {
                        return Poll::Ready(None);
                    }
                    let mut evict_due = false;
                    while evict.poll_tick(cx).is_ready() {
                        evict_due = true;
                    }
                    let mut top_up = false;
                    while let Some(at) = inner.expire_waiters(cx, &mut top_up) {
                        if waiters_timer.poll_at(at, cx).is_pending() {
                            break;
                        }
                    }
                    if evict_due {
                        inner.evict();
                    }
                    let mut dead = 0;
                    if watch {
                        loop {
                            let (closed, next) = inner.poll_idle(cx, &mut seen);
                            dead += closed;
                            match next {
                                Some(at) if watch_timer.poll_at(at, cx).is_ready() => {}
                                _ => break,
                            }
                        }
                    }
                    if evict_due || dead > 0 || top_up {
                        Poll::Ready(Some(inner))
                    } else {
                        Poll::Pending
                    }
                })
                .await;
                match woke {
                    Some(inner) => inner.replenish(),
                    None => return,
                }
            }
        });
    }
}
