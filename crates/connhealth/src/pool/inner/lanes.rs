//! The lanes: one per CPU, each holding the connection last returned on that CPU, so
//! that tasks on different cores reuse connections without meeting on the shared lock.

use std::task::Waker;
use std::time::Duration;

use super::{CachePadded, Idle, Inner, Shared};
use crate::pool::Manager;
use crate::sync::atomic::{AtomicBool, Ordering::Relaxed};
use crate::sync::{Mutex, MutexGuard};
use crate::sys::clock::CoarseTime;
use crate::sys::cpu::usable_cpus;

/// What one lane holds.
#[derive(Debug)]
struct LaneState<C> {
    /// At most one connection; more go to the shared list.
    idle: Option<Idle<C>>,
    /// Checkouts that took their connection here (the shared lock counts the rest).
    requests: u64,
}

/// One CPU's lane, behind its own lock, on a cache line of its own: each lane is written
/// by its own CPU only, but for a steal.
#[derive(Debug)]
pub(super) struct Lane<C>(CachePadded<Mutex<LaneState<C>>>);

impl<C> Lane<C> {
    fn lock(&self) -> MutexGuard<'_, LaneState<C>> {
        self.0 .0.lock()
    }

    fn try_lock(&self) -> Option<MutexGuard<'_, LaneState<C>>> {
        self.0 .0.try_lock()
    }

    /// Takes the connection parked here, if it is still here.
    pub(super) fn take(&self) -> Option<Idle<C>> {
        self.lock().idle.take()
    }
}

/// A connection parked in `lane`, and the older one it displaced there.
pub(super) struct Parked<'a, C> {
    pub(super) lane: &'a Lane<C>,
    pub(super) displaced: Option<Idle<C>>,
}

/// The pool's lanes, one per CPU (a power of two of them, indexed by the CPU a return or
/// checkout runs on), as pingora-pool's `PoolNode` is a hot path of its own beside the
/// shared state. A return with no one waiting parks its connection in its CPU's lane
/// ([`Lanes::park`]), and the next checkout on that CPU takes it back ([`Lanes::take`]);
/// a checkout whose lane is empty takes one parked in another lane
/// ([`Lanes::steal`]) before it opens a connection; the background task and `close`
/// empty them ([`Lanes::gather`], [`Lanes::drain`]).
///
/// # Concurrency
///
/// Each lane has a lock of its own. The fast paths, `park` and `take`, only `try_lock`
/// their CPU's lane: a lane another thread holds (a steal, a scheduler that moved the
/// task) sends them to the shared lock rather than make them wait. Every other method
/// locks lanes one after the other, each briefly, and only ever inside the shared lock,
/// never the other way round, so lanes and the shared lock cannot deadlock. No lane lock
/// is held across user code. The hand-shakes that keep a parked connection from being
/// missed by a waiter or by the idle watcher rest on these locks: a return reads
/// `queued` and `watch_armed` only after it let go of its lane, and a checkout that
/// queues, or a watcher that goes quiet, writes its flag before it looks in the lanes
/// (see the [module documentation](super)).
#[derive(Debug)]
pub(super) struct Lanes<C> {
    lanes: Box<[Lane<C>]>,
}

impl<C> Lanes<C> {
    /// `count` empty lanes; `count` is a power of two.
    pub(super) fn new(count: usize) -> Lanes<C> {
        debug_assert!(count.is_power_of_two());
        Lanes {
            lanes: (0..count)
                .map(|_| {
                    Lane(CachePadded(Mutex::new(LaneState {
                        idle: None,
                        requests: 0,
                    })))
                })
                .collect(),
        }
    }

    /// The lane of the CPU the calling thread runs on.
    fn here(&self) -> &Lane<C> {
        // The count is a power of two: a mask, not a division, on the fast path.
        &self.lanes[current_cpu() & (self.lanes.len() - 1)]
    }

    /// Takes the connection parked in this CPU's lane, for a checkout, unless another
    /// thread holds the lane.
    pub(super) fn take(&self) -> Option<Idle<C>> {
        let mut lane = self.here().try_lock()?;
        let idle = lane.idle.take()?;
        lane.requests += 1;
        Some(idle)
    }

    /// Parks `idle` in this CPU's lane, and returns the one it displaced there (the most
    /// recently returned is taken first); gives it back when another thread holds the
    /// lane or `closed` is set. `closed` is read under the lane's lock: `close` sets it
    /// before it drains the lanes, each under its lock, so a return that does not see it
    /// parks before its lane is drained.
    pub(super) fn park(
        &self,
        idle: Idle<C>,
        closed: &AtomicBool,
    ) -> Result<Parked<'_, C>, Idle<C>> {
        let lane = self.here();
        match lane.try_lock() {
            Some(mut parked) if !closed.load(Relaxed) => Ok(Parked {
                lane,
                displaced: parked.idle.replace(idle),
            }),
            _ => Err(idle),
        }
    }

    /// Takes a connection parked in any lane: for a checkout that found the shared list
    /// empty, rather than open a connection or wait while another CPU's lane holds one.
    pub(super) fn steal(&self) -> Option<Idle<C>> {
        self.lanes.iter().find_map(Lane::take)
    }

    /// Takes every parked connection (for `close`).
    pub(super) fn drain(&self) -> Vec<Idle<C>> {
        self.lanes.iter().filter_map(Lane::take).collect()
    }

    /// Hands the connections parked for at least `age` at `now` to `give`. Returns when
    /// the next connection left in a lane reaches that age, and the checkouts the lanes
    /// served.
    pub(super) fn gather(
        &self,
        now: CoarseTime,
        age: Duration,
        mut give: impl FnMut(Idle<C>),
    ) -> (Option<CoarseTime>, u64) {
        let mut next: Option<CoarseTime> = None;
        let mut served = 0;
        for lane in self.lanes.iter() {
            let mut lane = lane.lock();
            served += lane.requests;
            let Some(since) = lane.idle.as_ref().map(|idle| idle.since) else {
                continue;
            };
            if now.since(since) < age {
                let due = since.add(age);
                next = Some(next.map_or(due, |at| at.min(due)));
            } else if let Some(idle) = lane.idle.take() {
                give(idle);
            }
        }
        (next, served)
    }

    /// The connections parked, and the checkouts the lanes served.
    pub(super) fn tally(&self) -> (usize, u64) {
        self.lanes.iter().fold((0, 0), |(parked, served), lane| {
            let lane = lane.lock();
            (
                parked + usize::from(lane.idle.is_some()),
                served + lane.requests,
            )
        })
    }

    /// When the connection parked longest was parked, if any is.
    pub(super) fn oldest(&self) -> Option<CoarseTime> {
        self.lanes
            .iter()
            .filter_map(|lane| Some(lane.lock().idle.as_ref()?.since))
            .min()
    }
}

/// How many lanes a pool of `max_size` gets: one per CPU this process may use, but no
/// more than it has connections to park, rounded up to a power of two.
pub(super) fn lane_count(max_size: usize) -> usize {
    usable_cpus()
        .min(max_size)
        .clamp(1, 256)
        .next_power_of_two()
}

#[cfg(not(connhealth_loom))]
use crate::sys::cpu::current_cpu;

/// The models' seam for lanes: loom runs every model thread on one OS thread, whose CPU
/// says nothing of the model, so each model thread says which CPU it stands for.
#[cfg(connhealth_loom)]
pub(super) mod model_cpu {
    use std::cell::Cell;

    loom::thread_local! {
        static CPU: Cell<Option<usize>> = Cell::new(None);
    }

    /// Makes the calling model thread stand for `cpu`.
    #[cfg(test)]
    pub(crate) fn run_on(cpu: usize) {
        CPU.with(|c| c.set(Some(cpu)));
    }

    /// The CPU the calling model thread stands for; for one that did not say, the real one.
    pub(super) fn current_cpu() -> usize {
        CPU.with(Cell::get)
            .unwrap_or_else(crate::sys::cpu::current_cpu)
    }
}

#[cfg(connhealth_loom)]
use self::model_cpu::current_cpu;

impl<M: Manager> Inner<M> {
    /// After a connection was parked in `lane`. Read only now that the lane's lock was
    /// let go: a waiter that queued, or a watcher that went quiet, before this lane's
    /// lock was taken is seen here; one later than that looks at this lane itself
    /// (`enqueue`, `poll_idle`).
    pub(super) fn parked(&self, lane: &Lane<M::Connection>, now: CoarseTime) {
        let watch = self.config.watch_idle && !self.watch_armed.load(Relaxed);
        if watch || self.queued.load(Relaxed) {
            self.after_park(lane, now);
        }
    }

    /// Moves a connection taken out of a lane to the oldest waiter or the idle list, or
    /// closes it if the pool closed meanwhile.
    #[cold]
    #[inline(never)]
    pub(super) fn unpark(&self, idle: Idle<M::Connection>, now: CoarseTime) {
        let s = self.lock();
        if self.is_closed() {
            drop(s);
            self.close_then_free(idle);
        } else {
            self.give_unlocked(s, idle, now);
        }
    }

    /// A connection was parked as a waiter queued, or the watcher went quiet: hand it to
    /// the oldest waiter, if it is still parked, and arm the watcher.
    #[cold]
    #[inline(never)]
    fn after_park(&self, lane: &Lane<M::Connection>, now: CoarseTime) {
        let mut s = self.lock();
        let mut waiter = None;
        if !s.waiters.is_empty() {
            if let Some(idle) = lane.take() {
                waiter = s.give(idle, now);
                self.publish_queue(&s);
            }
        }
        let maintainer = self.arm_watcher(&s);
        super::wake_unlocked(s, waiter);
        if let Some(maintainer) = maintainer {
            maintainer.wake();
        }
    }

    /// Moves the connections parked in lanes for at least `age` to the oldest waiters,
    /// else to the idle list, and collects the waiters' wakers. Returns when the next
    /// connection left in a lane reaches that age, and the checkouts the lanes served.
    pub(super) fn gather(
        &self,
        s: &mut Shared<M::Connection>,
        now: CoarseTime,
        age: Duration,
        wakers: &mut Vec<Waker>,
    ) -> (Option<CoarseTime>, u64) {
        let gathered = self
            .lanes
            .gather(now, age, |idle| wakers.extend(s.give(idle, now)));
        self.publish_queue(s);
        gathered
    }
}
