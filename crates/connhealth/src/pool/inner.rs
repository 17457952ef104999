//! The pool's shared state, and the background task that keeps it healthy.
//!
//! One `std::sync::Mutex` guards everything that must change together: the idle
//! connections, the count of slots taken against `max_size`, and the queue of waiters.
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
//! lanes. A returned connection, or a slot freed by a closed one, is put straight into
//! the oldest waiter's slot under the lock, and its task woken after the lock is
//! released, so a newcomer can never overtake it. A return that parked its connection
//! just as a checkout queued on another core is caught from both sides: the checkout
//! publishes that it waits (`queued`) and then looks in every lane; the return reads
//! `queued` after it has let go of its lane. Whichever of the two took the lane's lock
//! second sees the other, so the connection reaches the waiter (the same handshake
//! keeps the idle watcher from missing a parked connection as it goes quiet). Waiter
//! slots live in a vector that is reused, so even the contended path allocates nothing
//! once the queue has reached its longest. A waiter that is dropped marks its slot
//! cancelled (skipped and freed by the next hand-off or sweep), or hands on whatever
//! already reached it ([`Waiting`]'s `Drop`). Every change to a slot happens under the
//! lock, so a hand-off cannot race a cancellation.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::stats::{Counters, Stats};
use super::Manager;
use crate::sync::atomic::{AtomicBool, Ordering::Relaxed};
use crate::sync::{Arc, Mutex, MutexGuard, Weak};
use crate::sys::clock::{coarse_now, coarse_resolution, CoarseTime};
use crate::sys::cpu::{current_cpu, usable_cpus};
use crate::util::{deadline_after, SharedSplitMix64};

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

impl<C> Idle<C> {
    /// Its connection, how long it was idle at `now`, and whether its lifetime is over.
    fn judged(self, now: CoarseTime) -> (Live<C>, u64, bool) {
        let expired = self.live.expired(now);
        (self.live, now.nanos_since(self.since), expired)
    }

    /// Checks it out at `now`.
    fn checkout(self, now: CoarseTime) -> Step<C> {
        let (live, idle_for, expired) = self.judged(now);
        Step::Idle(live, idle_for, expired)
    }

    /// Hands it to a waiter at `now`, judged as a checkout is: a connection that sat in
    /// a lane or the idle list comes with its idle time, so that its lifetime and
    /// `ping_after_idle` apply to it as to any other.
    fn handoff(self, now: CoarseTime) -> Handoff<C> {
        let (live, idle_for, expired) = self.judged(now);
        Handoff::Conn(live, idle_for, expired)
    }
}

/// What reaches a waiter: a connection (idle for this many nanoseconds when it was
/// handed over, and whether its lifetime was over then), or a slot to open one with.
#[derive(Debug)]
pub(crate) enum Handoff<C> {
    Conn(Live<C>, u64, bool),
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

    /// Gives an idle connection to the oldest waiter, else to the idle list, where it
    /// takes its place by the time it was returned (the list stays oldest first).
    /// Returns the waiter's waker, to wake once unlocked.
    fn give(&mut self, idle: Idle<C>, now: CoarseTime) -> Option<Waker> {
        match self.next_waiter() {
            Some(id) => self.deliver(id, idle.handoff(now), now),
            None => {
                let at = self.idle.partition_point(|other| other.since <= idle.since);
                self.idle.insert(at, idle);
                None
            }
        }
    }

    /// Adds a wait that began at `queued` and ended at `now` to `wait_time`.
    fn wait_ended(&mut self, queued: CoarseTime, now: CoarseTime) {
        self.wait_nanos = self.wait_nanos.saturating_add(now.nanos_since(queued));
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

/// Keeps a lock on a cache line of its own: the `Arc` count beside the shared lock
/// changes on every checkout and return too, and two cores would fight over one line
/// for both; each lane is written by its own CPU only.
#[derive(Debug)]
#[repr(align(128))]
struct CachePadded<T>(T);

/// One CPU's lane: the connection last returned on that CPU, kept there for the next
/// checkout on it, so that tasks on different cores reuse connections without meeting
/// on the shared lock. It holds at most one connection; more go to the shared list.
#[derive(Debug)]
struct Lane<C> {
    idle: Option<Idle<C>>,
    /// Checkouts that took their connection here (the shared lock counts the rest).
    requests: u64,
}

/// A lane, behind its lock.
type LaneLock<C> = Mutex<Lane<C>>;

/// A connection parked in `lane`, and the older one it displaced there.
struct Parked<'a, C> {
    lane: &'a LaneLock<C>,
    displaced: Option<Idle<C>>,
}

pub(crate) struct Inner<M: Manager> {
    pub(crate) manager: M,
    pub(crate) config: Config,
    shared: CachePadded<Mutex<Shared<M::Connection>>>,
    /// One per CPU (a power of two, at most `max_size` rounded up), indexed by the CPU a
    /// return or checkout runs on.
    lanes: Box<[CachePadded<LaneLock<M::Connection>>]>,
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
        Inner {
            manager,
            shared: CachePadded(Mutex::new(Shared {
                // Room for the usual pool up front; a larger one grows its list once.
                idle: VecDeque::with_capacity(config.max_size.min(1024)),
                queue: VecDeque::new(),
                slots: Vec::new(),
                free_slots: Vec::new(),
                sweep_at: 16,
                maintainer: None,
                top_up: false,
                size: 0,
                connecting: 0,
                requests: 0,
                checkouts: 0,
                wait_count: 0,
                wait_nanos: 0,
            })),
            lanes: (0..lane_count(config.max_size))
                .map(|_| {
                    CachePadded(Mutex::new(Lane {
                        idle: None,
                        requests: 0,
                    }))
                })
                .collect(),
            queued: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            watch_armed: AtomicBool::new(false),
            queue_wait: config.get_timeout.saturating_add(coarse_resolution()),
            config,
            counters: Counters::default(),
            jitter: SharedSplitMix64::new(),
        }
    }

    /// Locks the shared state. A panic elsewhere cannot leave it half-changed (no user
    /// code runs under the lock but a readiness poll, and each section updates its
    /// fields before anything that can panic), so poisoning is ignored: one panicking
    /// task must not take the pool down for every other.
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
            let (parked, lane_checkouts) = self.tally_lanes();
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

    /// The lane of the CPU the calling thread runs on.
    fn lane(&self) -> &LaneLock<M::Connection> {
        // The count is a power of two: a mask, not a division, on the fast path.
        &self.lanes[current_cpu() & (self.lanes.len() - 1)].0
    }

    /// The connections parked in lanes, and the checkouts the lanes served.
    fn tally_lanes(&self) -> (usize, u64) {
        self.lanes.iter().fold((0, 0), |(parked, served), lane| {
            let lane = lane.0.lock();
            (
                parked + usize::from(lane.idle.is_some()),
                served + lane.requests,
            )
        })
    }

    /// Takes a connection parked in any lane: for a checkout that found the shared list
    /// empty, rather than open a connection or wait while another CPU's lane holds one.
    fn steal(&self) -> Option<Idle<M::Connection>> {
        self.lanes.iter().find_map(|lane| lane.0.lock().idle.take())
    }

    /// Moves the connections parked in lanes for at least `age` to the oldest waiters,
    /// else to the idle list, and collects the waiters' wakers. Returns when the next
    /// connection left in a lane reaches that age, and the checkouts the lanes served.
    /// Lane locks are taken inside the shared lock, never the other way round.
    fn gather(
        &self,
        s: &mut Shared<M::Connection>,
        now: CoarseTime,
        age: Duration,
        wakers: &mut Vec<Waker>,
    ) -> (Option<CoarseTime>, u64) {
        let mut next: Option<CoarseTime> = None;
        let mut served = 0;
        for lane in self.lanes.iter() {
            let mut lane = lane.0.lock();
            served += lane.requests;
            let Some(since) = lane.idle.as_ref().map(|idle| idle.since) else {
                continue;
            };
            if now.since(since) < age {
                let due = since.add(age);
                next = Some(next.map_or(due, |at| at.min(due)));
            } else if let Some(idle) = lane.idle.take() {
                wakers.extend(s.give(idle, now));
            }
        }
        self.publish_queue(s);
        (next, served)
    }

    /// Mirrors whether waiters queue into `queued`, under the shared lock; written only
    /// when it changes, so that a busy pool does not move its line between cores.
    fn publish_queue(&self, s: &Shared<M::Connection>) {
        let queued = !s.queue.is_empty();
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

    /// The first step of a checkout: the connection parked in this CPU's lane, else an
    /// idle one from the shared list or another lane, else a slot to connect with
    /// (counted before the connect starts, so `max_size` holds while connects stall),
    /// else a place in the queue, with a deadline `get_timeout` from now. When the pool
    /// must grow, `grow_by - 1` extra slots are reserved for background connects. A
    /// queued checkout registers `cx`'s waker in the same critical section.
    pub(crate) fn acquire(self: &Arc<Self>, cx: &Context<'_>) -> Step<M::Connection> {
        // While waiters queue, they go first: no lane is looked at.
        if !self.queued.load(Relaxed) {
            if let Some(mut lane) = self.lane().try_lock() {
                if let Some(idle) = lane.idle.take() {
                    lane.requests += 1;
                    drop(lane);
                    return idle.checkout(coarse_now());
                }
            }
        }
        self.acquire_shared(cx)
    }

    /// A checkout that this CPU's lane could not serve.
    fn acquire_shared(self: &Arc<Self>, cx: &Context<'_>) -> Step<M::Connection> {
        let now = coarse_now();
        let mut s = self.lock();
        s.requests += 1;
        if self.is_closed() {
            return Step::Closed;
        }
        let idle = match s.idle.pop_back() {
            Some(idle) => Some(idle),
            // Another CPU's lane may hold one: take it rather than open a connection.
            // Not ahead of queued waiters (a connection parked meanwhile goes to them),
            // and not at `max_size`, where `enqueue` looks once it has told the returns
            // that someone waits.
            None if s.queue.is_empty() && s.size < self.config.max_size => self.steal(),
            None => None,
        };
        if let Some(idle) = idle {
            s.checkouts += 1;
            drop(s);
            return idle.checkout(now);
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
        if s.queue.len() >= s.sweep_at {
            // Waiters that were dropped stay queued until a hand-off meets them; sweep
            // them so that an exhausted pool cannot grow its queue without bound.
            s.sweep();
        }
        if s.queue.is_empty() {
            // From now on returns go through the queue. A return that parked its
            // connection in a lane before it could see that is found here: either it
            // let go of its lane's lock before this looks, or it reads `queued` after
            // letting go, and hands the connection on itself. (While the queue stays
            // non-empty, the waiter that first made it so did this look already.)
            self.queued.store(true, Relaxed);
            if let Some(idle) = self.steal() {
                self.publish_queue(&s);
                s.checkouts += 1;
                drop(s);
                return idle.checkout(now);
            }
        }
        s.wait_count += 1;
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
            let next = loop {
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
            };
            self.publish_queue(&s);
            next
        };
        wakers.into_iter().for_each(Waker::wake);
        next
    }

    /// After a checked-out connection was found unusable and dropped: its slot is still
    /// ours. Take another idle connection (giving the slot back), else keep the slot and
    /// connect.
    pub(crate) fn reacquire(&self, now: CoarseTime) -> Step<M::Connection> {
        let mut s = self.lock();
        if self.is_closed() {
            s.size -= 1;
            return Step::Closed;
        }
        if let Some(idle) = s.idle.pop_back() {
            // Idle connections exist only while no live waiter does, so the slot given
            // back here has no one to go to.
            s.size -= 1;
            s.checkouts += 1;
            let top_up = self.closed_one(&mut s);
            wake_unlocked(s, top_up);
            return idle.checkout(now);
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

    /// Returns a connection: to this CPU's lane when no one waits and the lane is free,
    /// else to the oldest waiter, else to the idle list. It is closed instead when
    /// `discard` is set (unusable, or returned during a panic), when its lifetime is
    /// over (checked here so that an always-busy connection expires too), or when the
    /// pool is closed. `fresh` marks a connect that just finished.
    pub(crate) fn put(&self, live: Live<M::Connection>, discard: bool, fresh: bool) {
        let now = coarse_now();
        let expired = live.expired(now);
        if discard || expired || fresh || self.queued.load(Relaxed) {
            return self.put_shared(live, discard, expired, fresh, now);
        }
        match self.park(live, now) {
            Ok(Parked { lane, displaced }) => {
                if let Some(older) = displaced {
                    self.unpark(older, now);
                }
                self.parked(lane, now);
            }
            Err(live) => self.put_shared(live, false, false, false, now),
        }
    }

    /// After a connection was parked in `lane`. Read only now that the lane's lock was
    /// let go: a waiter that queued, or a watcher that went quiet, before this lane's
    /// lock was taken is seen here; one later than that looks at this lane itself
    /// (`enqueue`, `poll_idle`).
    fn parked(&self, lane: &LaneLock<M::Connection>, now: CoarseTime) {
        let watch = self.config.watch_idle && !self.watch_armed.load(Relaxed);
        if watch || self.queued.load(Relaxed) {
            self.after_park(lane, now);
        }
    }

    /// Parks a connection in this CPU's lane, and returns the one it displaced there (the
    /// most recently returned is taken first); gives it back when another thread holds
    /// the lane or the pool closed.
    fn park(
        &self,
        live: Live<M::Connection>,
        now: CoarseTime,
    ) -> Result<Parked<'_, M::Connection>, Live<M::Connection>> {
        let lane = self.lane();
        match lane.try_lock() {
            // `close` sets `closed` before it empties the lanes, each under its lock: a
            // return that does not see it here parks before that lane is emptied.
            Some(mut parked) if !self.closed.load(Relaxed) => {
                let idle = Idle {
                    live,
                    since: now,
                    watched: false,
                };
                Ok(Parked {
                    lane,
                    displaced: parked.idle.replace(idle),
                })
            }
            _ => Err(live),
        }
    }

    /// Moves a connection taken out of a lane to the oldest waiter or the idle list, or
    /// closes it if the pool closed meanwhile.
    #[cold]
    #[inline(never)]
    fn unpark(&self, idle: Idle<M::Connection>, now: CoarseTime) {
        let s = self.lock();
        if self.is_closed() {
            drop(s);
            self.close_then_free(idle);
        } else {
            self.give_unlocked(s, idle, now);
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

    /// A connection was parked as a waiter queued, or the watcher went quiet: hand it to
    /// the oldest waiter, if it is still parked, and arm the watcher.
    #[cold]
    #[inline(never)]
    fn after_park(&self, lane: &LaneLock<M::Connection>, now: CoarseTime) {
        let mut s = self.lock();
        let mut waiter = None;
        if !s.queue.is_empty() {
            if let Some(idle) = lane.lock().idle.take() {
                waiter = s.give(idle, now);
                self.publish_queue(&s);
            }
        }
        let maintainer = self.arm_watcher(&s);
        wake_unlocked(s, waiter);
        if let Some(maintainer) = maintainer {
            maintainer.wake();
        }
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

    /// Closes a connection, then frees its slot. Closing runs the connection's `Drop`,
    /// user code: should it panic, the slot is freed all the same, on the way out.
    fn close_then_free<T>(&self, conn: T) {
        let _slot = FreeSlot(self);
        drop(conn);
    }

    /// Closes a connection whose slot the caller keeps, to take or open another with:
    /// should its `Drop` panic, the slot is freed on the way out.
    pub(crate) fn close_keeping_slot<T>(&self, conn: T) {
        let slot = FreeSlot(self);
        drop(conn);
        std::mem::forget(slot);
    }

    /// Frees a slot (a connection closed, or a connect that failed or was cancelled,
    /// when `connecting`), and hands it to the oldest waiter, who will connect.
    pub(crate) fn release_slot(&self, connecting: bool) {
        let mut s = self.lock();
        if connecting {
            s.connecting -= 1;
        }
        let next = if self.is_closed() {
            None
        } else {
            s.next_waiter()
        };
        self.publish_queue(&s);
        match next {
            Some(id) => {
                // The slot passes to the waiter as a connect in flight.
                s.connecting += 1;
                let waker = s.deliver(id, Handoff::Slot, coarse_now());
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
            // Before the lanes are emptied: see `park`.
            self.closed.store(true, Relaxed);
            // The background task exits on its next poll: make it now.
            wakers.extend(s.maintainer.take());
            let idle = std::mem::take(&mut s.idle);
            let parked: Vec<_> = self
                .lanes
                .iter()
                .filter_map(|lane| lane.0.lock().idle.take())
                .collect();
            s.size -= idle.len() + parked.len();
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
            self.publish_queue(&s);
            (idle, parked)
        };
        wakers.into_iter().for_each(Waker::wake);
        drop(idle);
        drop(parked);
    }

    /// Opens one connection in the background, in a slot already counted as connecting,
    /// bounded by `get_timeout` so that a stalled connect cannot hold the slot forever.
    /// Off a tokio runtime (a `get` polled by another executor) there is nowhere to run
    /// it: the slot is freed, and the caller's own connect is all the growth.
    pub(crate) fn spawn_connect(self: &Arc<Self>) {
        let slot = ConnectSlot::new(Arc::clone(self));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(self);
        runtime.spawn(async move {
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
    /// `idle_timeout` beyond `min_idle` (oldest first). The lanes are emptied into the
    /// idle list first, so that parked connections age and expire like the others.
    fn evict(&self) {
        let now = coarse_now();
        let mut closed = Vec::new();
        let mut wakers = Vec::new();
        {
            let mut s = self.lock();
            self.gather(&mut s, now, Duration::ZERO, &mut wakers);
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
            Counters::bump(&self.counters.lifetime_closed, lifetime as u64);
            Counters::bump(&self.counters.idle_closed, (closed.len() - lifetime) as u64);
        }
        wakers.into_iter().for_each(Waker::wake);
        // Their slots are freed once they are closed, so that a connect made for a
        // checkout meanwhile never has more than max_size open.
        for idle in closed {
            self.close_then_free(idle);
        }
    }

    /// Polls the idle connections for a close by the peer. Those idle for
    /// [`WATCH_AFTER`] are registered first (a connection parked in a lane that long is
    /// moved to the idle list for it); each registered one is asked
    /// `Manager::poll_closed`, which leaves the task's waker with the runtime, so a FIN
    /// or RST wakes the task at once. Returns how many were closed, and when to look
    /// again: when the next unregistered one is due, else, while checkouts go on (seen
    /// by the count of requests against `seen`), [`WATCH_AFTER`] from now, so that a
    /// busy pool does not wake the task on every return. None: the pool is quiet, and
    /// only a return wakes the task again.
    fn poll_idle(&self, cx: &mut Context<'_>, seen: &mut u64) -> (usize, Option<CoarseTime>) {
        let now = coarse_now();
        let mut dead = Vec::new();
        let mut wakers = Vec::new();
        let mut s = self.lock();
        let (mut next, lane_checkouts) = self.gather(&mut s, now, WATCH_AFTER, &mut wakers);
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
        let requests = s.requests + lane_checkouts;
        if next.is_none() && requests != *seen {
            next = Some(now.add(WATCH_AFTER));
        }
        *seen = requests;
        match next {
            Some(_) => self.watch_armed.store(true, Relaxed),
            None => next = self.go_quiet(),
        }
        drop(s);
        wakers.into_iter().for_each(Waker::wake);
        Counters::bump(&self.counters.peer_closed, dead.len() as u64);
        (dead.len(), next)
    }

    /// Stops the watcher's timer, under the shared lock, unless a connection was parked
    /// meanwhile: a return that parks after this looks at its lane reads `watch_armed`
    /// as false and wakes the task (see [`Inner::parked`]); one that parked before is
    /// found here, and the timer is set for when it is due.
    fn go_quiet(&self) -> Option<CoarseTime> {
        self.watch_armed.store(false, Relaxed);
        let next = self
            .lanes
            .iter()
            .filter_map(|lane| Some(lane.0.lock().idle.as_ref()?.since))
            .min()
            .map(|since| since.add(WATCH_AFTER));
        if next.is_some() {
            self.watch_armed.store(true, Relaxed);
        }
        next
    }

    /// Opens connections in the background until idle plus connecting reaches
    /// `min_idle`, within `max_size`.
    fn replenish(self: &Arc<Self>) {
        let want = {
            let mut s = self.lock();
            if self.is_closed() {
                return;
            }
            let (parked, _) = self.tally_lanes();
            let have = s.idle.len() + parked + s.connecting;
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
        let shared = self.shared.0.get_mut();
        if let Some(maintainer) = shared.maintainer.take() {
            maintainer.wake();
        }
    }
}

/// How many lanes a pool of `max_size` gets: one per CPU this process may use, but no
/// more than it has connections to park, rounded up to a power of two.
fn lane_count(max_size: usize) -> usize {
    usable_cpus()
        .min(max_size)
        .clamp(1, 256)
        .next_power_of_two()
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

/// Frees the slot of a closed connection when dropped: see [`Inner::close_then_free`].
struct FreeSlot<'a, M: Manager>(&'a Inner<M>);

impl<M: Manager> Drop for FreeSlot<'_, M> {
    fn drop(&mut self) {
        self.0.release_slot(false);
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
        if matches!(outcome, Waited::Handoff(Handoff::Conn(..))) {
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
                let queued = slot.queued;
                s.wait_ended(queued, coarse_now());
            }
            WaitState::Delivered(handoff) => {
                s.free(id);
                drop(s);
                match handoff {
                    Handoff::Conn(live, ..) => self.inner.put(live, false, false),
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
            sleep: Box::pin(tokio::time::sleep_until(deadline_after(
                Instant::now(),
                Duration::MAX,
            ))),
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
            self.sleep
                .as_mut()
                .reset(deadline_after(Instant::now(), left));
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

#[cfg(test)]
mod tests {
    //! The races between a return that parks its connection in a lane and a checkout
    //! that queues, or a watcher that goes quiet, on another core. A test through the
    //! public API meets the narrowest of them only by luck (`tests/pool_cores.rs` runs
    //! them for real); here each thread's steps run one after the other, in the order
    //! that would strand a connection if a check were missing.

    use crate::sync::atomic::AtomicU64;
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::Wake;

    use super::*;
    use crate::Status;

    struct Numbers;

    impl Manager for Numbers {
        type Connection = u32;
        type Error = std::io::Error;
        async fn connect(&self) -> std::io::Result<u32> {
            Ok(7)
        }
        fn check(&self, _: &u32) -> Status {
            Status::Open
        }
    }

    #[derive(Default)]
    struct CountWakes(AtomicU64);

    impl Wake for CountWakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Relaxed);
        }
    }

    /// A pool at its max_size of 1, its one connection checked out and returned here.
    fn pool_at_max(watch_idle: bool) -> (Arc<Inner<Numbers>>, Live<u32>) {
        pool_at_max_lasting(watch_idle, None)
    }

    /// The same, its connection closed after `max_lifetime` (no jitter).
    fn pool_at_max_lasting(
        watch_idle: bool,
        max_lifetime: Option<Duration>,
    ) -> (Arc<Inner<Numbers>>, Live<u32>) {
        let config = Config {
            max_size: 1,
            min_idle: 0,
            grow_by: 1,
            idle_timeout: None,
            max_lifetime,
            lifetime_jitter: 0.0,
            get_timeout: Duration::from_secs(30),
            evict_interval: Duration::from_secs(30),
            ping_after_idle: None,
            watch_idle,
        };
        let inner = Arc::new(Inner::new(Numbers, config));
        inner.reserve_connects(1);
        inner.connected();
        let live = inner.live(7);
        (inner, live)
    }

    /// A return that parks `live` in its (empty) lane, and then reads what it reads
    /// once it has let go of the lane. Returns the lane, and the time of the return.
    fn return_to_lane<M: Manager>(
        inner: &Inner<M>,
        live: Live<M::Connection>,
    ) -> (&LaneLock<M::Connection>, CoarseTime) {
        let now = coarse_now();
        let Ok(Parked {
            lane,
            displaced: None,
        }) = inner.park(live, now)
        else {
            panic!("an empty lane takes the connection");
        };
        inner.parked(lane, now);
        (lane, now)
    }

    #[test]
    fn a_return_that_read_no_waiter_before_one_queued_hands_its_connection_on() {
        let (inner, live) = pool_at_max(false);
        // The return reads `queued`: no one waits yet. (It goes on below.)
        assert!(!inner.queued.load(Relaxed));
        // Another core: a checkout queues, and looks in the lanes, before the return
        // parks: it finds nothing.
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(Arc::clone(&wakes));
        let Step::Wait(id, _) = inner.acquire(&Context::from_waker(&waker)) else {
            panic!("the pool is at max_size with nothing idle: the checkout must queue");
        };
        // The return parks its connection; once it lets go of the lane, it reads
        // `queued` again, and must hand the connection to the waiter.
        let (lane, _) = return_to_lane(&inner, live);
        let s = inner.lock();
        assert!(
            matches!(s.slots[id].state, WaitState::Delivered(Handoff::Conn(..))),
            "the connection reached the waiter"
        );
        assert_eq!(wakes.0.load(Relaxed), 1, "and woke it");
        assert!(lane.lock().idle.is_none());
    }

    #[test]
    fn a_checkout_that_queues_after_a_connection_was_parked_takes_it() {
        let (inner, live) = pool_at_max(false);
        // The return parks on this core and reads `queued` after: no one waits.
        return_to_lane(&inner, live);
        // A checkout on another core, whose own lane is empty: at max_size, it queues,
        // and then looks in every lane.
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let cx = Context::from_waker(&waker);
        assert!(matches!(
            inner.acquire_shared(&cx),
            Step::Idle(Live { conn: 7, .. }, _, false)
        ));
        assert!(!inner.queued.load(Relaxed), "no one waits any more");
    }

    #[test]
    fn a_return_that_read_the_watcher_armed_before_it_went_quiet_wakes_it() {
        let (inner, live) = pool_at_max(true);
        let wakes = Arc::new(CountWakes::default());
        let waker = Waker::from(Arc::clone(&wakes));
        let mut cx = Context::from_waker(&waker);
        // The background task registers its waker, and, with nothing idle and no
        // checkout going on, goes quiet.
        inner.expire_waiters(&mut cx, &mut false);
        let mut seen = inner.stats().requests();
        assert_eq!(inner.poll_idle(&mut cx, &mut seen), (0, None));
        assert!(!inner.watch_armed.load(Relaxed));
        // A return parks its connection: it must wake the task, which would otherwise
        // never register the connection for a close by its peer.
        let (_, now) = return_to_lane(&inner, live);
        assert_eq!(wakes.0.load(Relaxed), 1);
        assert!(inner.watch_armed.load(Relaxed));
        // The task looks again: it sets a timer for when the connection has sat idle
        // long enough to register.
        let (_, next) = inner.poll_idle(&mut cx, &mut seen);
        assert_eq!(next, Some(now.add(WATCH_AFTER)));
    }

    #[test]
    fn a_watcher_going_quiet_finds_a_connection_parked_while_it_looked() {
        let (inner, live) = pool_at_max(true);
        // The watcher is armed; a return parks its connection after the watcher looked
        // at the lanes, reads it armed, and leaves it be.
        inner.watch_armed.store(true, Relaxed);
        let (_, now) = return_to_lane(&inner, live);
        // The watcher, which saw nothing to do, goes quiet: it must find that
        // connection, and stay armed for it.
        let _s = inner.lock();
        assert_eq!(inner.go_quiet(), Some(now.add(WATCH_AFTER)));
        assert!(inner.watch_armed.load(Relaxed));
    }

    #[test]
    fn a_connection_handed_over_from_a_lane_comes_with_its_idle_time() {
        let (inner, live) = pool_at_max_lasting(false, Some(Duration::from_millis(1)));
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let Step::Wait(id, _) = inner.acquire(&Context::from_waker(&waker)) else {
            panic!("the pool is at max_size with nothing idle: the checkout must queue");
        };
        // A return parks its connection just as the checkout queued, and is held up
        // (preempted) before it reads `queued`: the connection sits in the lane.
        assert!(inner.park(live, coarse_now()).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        // The evictor finds it there and hands it to the waiter: idle 20 ms, and past
        // its 1 ms lifetime, which the checkout must see to close it.
        inner.evict();
        let s = inner.lock();
        match &s.slots[id].state {
            WaitState::Delivered(Handoff::Conn(_, idle_for, expired)) => {
                assert!(*expired, "its lifetime is over");
                // The coarse clock may round the 20 ms down by a tick.
                assert!(*idle_for >= 10_000_000, "idle for {idle_for} ns");
            }
            other => panic!("nothing was handed over: {other:?}"),
        }
    }

    /// Connections whose close takes until the test lets it finish.
    #[derive(Default)]
    struct SlowClose {
        closing: Arc<AtomicBool>,
        finish: Arc<AtomicBool>,
    }

    #[derive(Debug)]
    struct Slow {
        closing: Arc<AtomicBool>,
        finish: Arc<AtomicBool>,
    }

    impl Drop for Slow {
        fn drop(&mut self) {
            self.closing.store(true, SeqCst);
            while !self.finish.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    impl Manager for SlowClose {
        type Connection = Slow;
        type Error = std::io::Error;
        async fn connect(&self) -> std::io::Result<Slow> {
            Ok(Slow {
                closing: Arc::clone(&self.closing),
                finish: Arc::clone(&self.finish),
            })
        }
        fn check(&self, _: &Slow) -> Status {
            Status::Open
        }
    }

    #[test]
    fn an_evicted_connection_frees_its_slot_only_once_closed() {
        let config = Config {
            max_size: 1,
            min_idle: 0,
            grow_by: 1,
            idle_timeout: None,
            max_lifetime: Some(Duration::from_millis(1)),
            lifetime_jitter: 0.0,
            get_timeout: Duration::from_secs(30),
            evict_interval: Duration::from_secs(30),
            ping_after_idle: None,
            watch_idle: false,
        };
        let manager = SlowClose::default();
        let (closing, finish) = (Arc::clone(&manager.closing), Arc::clone(&manager.finish));
        let inner = Arc::new(Inner::new(manager, config));
        inner.reserve_connects(1);
        inner.connected();
        let live = inner.live(Slow {
            closing: Arc::clone(&closing),
            finish: Arc::clone(&finish),
        });
        return_to_lane(&inner, live);
        std::thread::sleep(Duration::from_millis(10)); // past its lifetime
        let evictor = std::thread::spawn({
            let inner = Arc::clone(&inner);
            move || inner.evict()
        });
        while !closing.load(SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The evictor is closing the connection: a checkout now must wait for its slot,
        // not open a second connection beside it.
        let waker = Waker::from(Arc::new(CountWakes::default()));
        let step = inner.acquire(&Context::from_waker(&waker));
        let Step::Wait(id, _) = step else {
            panic!("max_size 1, one connection still closing, and the checkout got {step:?}");
        };
        finish.store(true, SeqCst);
        evictor.join().unwrap();
        assert!(matches!(
            inner.lock().slots[id].state,
            WaitState::Delivered(Handoff::Slot)
        ));
    }

    #[test]
    fn no_connection_is_parked_after_a_close() {
        let (inner, live) = pool_at_max(false);
        inner.close();
        assert!(
            inner.park(live, coarse_now()).is_err(),
            "it is closed instead"
        );
    }
}
