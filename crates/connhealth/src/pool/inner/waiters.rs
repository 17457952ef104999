//! The waiters: checkouts that found nothing idle and no permit free, queued first in,
//! first out, each handed a connection or a permit, timed out, closed or dropped.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use super::{Checkout, Inner, Shared, Step};
use crate::pool::Manager;
use crate::sync::MutexGuard;
use crate::sys::clock::{coarse_now, CoarseTime};

/// A waiter's place in [`Waiters`]: an index into a vector that is reused, so that even
/// the contended path allocates nothing once the queue has reached its longest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WaiterId(usize);

/// What reaches a waiter: a connection, or a permit to open one with.
#[derive(Debug)]
pub(crate) enum Handoff<C> {
    Conn(Checkout<C>),
    Permit,
}

/// Where a waiter stands.
#[derive(Debug)]
pub(super) enum WaitState<C> {
    /// The place is unused.
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

/// One queued checkout.
#[derive(Debug)]
pub(super) struct Waiter<C> {
    pub(super) state: WaitState<C>,
    waker: Option<Waker>,
    /// When the wait began.
    queued: CoarseTime,
    /// When the wait gives up: `get_timeout` after it began, plus one tick of the
    /// coarse clock, so that it never gives up early.
    deadline: CoarseTime,
}

/// The queue of waiters, oldest first, and the places they live in. Kept under the
/// shared lock: every change to a waiter happens under it, so a hand-off cannot race a
/// cancellation.
#[derive(Debug)]
pub(super) struct Waiters<C> {
    /// Waiting checkouts, oldest first (cancelled ones too, until met).
    queue: VecDeque<WaiterId>,
    places: Vec<Waiter<C>>,
    /// Places no waiter uses.
    free: Vec<WaiterId>,
    /// Queue length at which cancelled waiters are swept out.
    sweep_at: usize,
}

impl<C> Waiters<C> {
    pub(super) fn new() -> Waiters<C> {
        Waiters {
            queue: VecDeque::new(),
            places: Vec::new(),
            free: Vec::new(),
            sweep_at: 16,
        }
    }

    /// True when no one is queued (cancelled waiters not yet met count as queued).
    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(super) fn get(&self, id: WaiterId) -> &Waiter<C> {
        &self.places[id.0]
    }

    fn get_mut(&mut self, id: WaiterId) -> &mut Waiter<C> {
        &mut self.places[id.0]
    }

    /// Pops the oldest live waiter, freeing the cancelled ones ahead of it.
    pub(super) fn next(&mut self) -> Option<WaiterId> {
        while let Some(id) = self.queue.pop_front() {
            if matches!(self.get(id).state, WaitState::Queued) {
                return Some(id);
            }
            self.release(id);
        }
        None
    }

    /// Frees a waiter's place.
    fn release(&mut self, id: WaiterId) {
        let waiter = self.get_mut(id);
        waiter.state = WaitState::Free;
        waiter.waker = None;
        self.free.push(id);
    }

    /// Sweeps the queue when it is long: waiters that were dropped stay queued until a
    /// hand-off meets them, and an exhausted pool must not grow its queue without bound.
    fn sweep_if_long(&mut self) {
        if self.queue.len() >= self.sweep_at {
            self.sweep();
        }
    }

    /// Frees the cancelled waiters' places and drops them from the queue.
    fn sweep(&mut self) {
        let mut queue = std::mem::take(&mut self.queue);
        queue.retain(|&id| {
            let live = matches!(self.get(id).state, WaitState::Queued);
            if !live {
                self.release(id);
            }
            live
        });
        self.queue = queue;
        self.sweep_at = (self.queue.len() * 2).max(16);
    }

    /// Queues a waiter that began at `now`, gives up at `deadline` and is woken through
    /// `waker`. Returns it, and whether the queue was empty before.
    fn push(&mut self, now: CoarseTime, deadline: CoarseTime, waker: &Waker) -> (WaiterId, bool) {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.places.push(Waiter {
                    state: WaitState::Free,
                    waker: None,
                    queued: now,
                    deadline,
                });
                WaiterId(self.places.len() - 1)
            }
        };
        let waiter = self.get_mut(id);
        waiter.state = WaitState::Queued;
        waiter.queued = now;
        waiter.deadline = deadline;
        match &waiter.waker {
            Some(known) if known.will_wake(waker) => {}
            _ => waiter.waker = Some(waker.clone()),
        }
        let first = self.queue.is_empty();
        self.queue.push_back(id);
        (id, first)
    }

    /// Ends every queued wait with `Closed`: returns when each began, and the wakers.
    fn close_all(&mut self, wakers: &mut Vec<Waker>) -> Vec<CoarseTime> {
        let mut began = Vec::new();
        while let Some(id) = self.queue.pop_front() {
            let waiter = self.get_mut(id);
            if matches!(waiter.state, WaitState::Queued) {
                waiter.state = WaitState::Closed;
                wakers.extend(waiter.waker.take());
                began.push(waiter.queued);
            } else {
                self.release(id);
            }
        }
        began
    }
}

impl<C> Shared<C> {
    /// Puts `handoff` in waiter `id`'s place, and counts its wait as over at `now`;
    /// returns the waker to wake once unlocked.
    pub(super) fn deliver(
        &mut self,
        id: WaiterId,
        handoff: Handoff<C>,
        now: CoarseTime,
    ) -> Option<Waker> {
        let waiter = self.waiters.get_mut(id);
        waiter.state = WaitState::Delivered(handoff);
        let (waker, queued) = (waiter.waker.take(), waiter.queued);
        self.wait_ended(queued, now);
        waker
    }

    /// Adds a wait that began at `queued` and ended at `now` to `wait_time`.
    fn wait_ended(&mut self, queued: CoarseTime, now: CoarseTime) {
        self.wait_nanos = self.wait_nanos.saturating_add(now.nanos_since(queued));
    }

    /// Ends every queued wait with `Closed` at `now`, collecting the wakers.
    pub(super) fn close_waiters(&mut self, now: CoarseTime, wakers: &mut Vec<Waker>) {
        for queued in self.waiters.close_all(wakers) {
            self.wait_ended(queued, now);
        }
    }
}

impl<M: Manager> Inner<M> {
    /// Queues a checkout, oldest first. Kept out of line: the fast path never comes here.
    #[cold]
    #[inline(never)]
    pub(super) fn enqueue(
        &self,
        mut s: MutexGuard<'_, Shared<M::Connection>>,
        now: CoarseTime,
        cx: &Context<'_>,
    ) -> Step<M::Connection> {
        s.waiters.sweep_if_long();
        if s.waiters.is_empty() {
            // From now on returns go through the queue. A return that parked its
            // connection in a lane before it could see that is found here: either it
            // let go of its lane's lock before this looks, or it reads `queued` after
            // letting go, and hands the connection on itself. (While the queue stays
            // non-empty, the waiter that first made it so did this look already.)
            self.queued
                .store(true, crate::sync::atomic::Ordering::Relaxed);
            if let Some(idle) = self.lanes.steal() {
                self.publish_queue(&s);
                s.checkouts += 1;
                drop(s);
                return idle.checkout(now);
            }
        }
        s.wait_count += 1;
        let deadline = now.add(self.queue_wait);
        let (waiter, first) = s.waiters.push(now, deadline, cx.waker());
        // Deadlines grow along the queue (same timeout, later start), so the background
        // task's one timer, set for the oldest waiter, needs news only when the queue
        // stops being empty.
        let maintainer = if first { s.maintainer.clone() } else { None };
        super::wake_unlocked(s, maintainer);
        Step::Wait { waiter, deadline }
    }

    /// Times out the queued waiters whose deadline has passed, and returns the earliest
    /// deadline left (coarse clock). Registers `cx` to hear of a new first waiter, and
    /// sets `top_up` when a closed connection asked for `min_idle` to be topped up.
    /// Deadlines grow along the queue, so only its front is looked at.
    pub(super) fn expire_waiters(
        &self,
        cx: &mut Context<'_>,
        top_up: &mut bool,
    ) -> Option<CoarseTime> {
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
                let Some(&id) = s.waiters.queue.front() else {
                    break None;
                };
                let waiter = s.waiters.get_mut(id);
                match waiter.state {
                    WaitState::Queued if waiter.deadline > now => break Some(waiter.deadline),
                    WaitState::Queued => {
                        waiter.state = WaitState::TimedOut;
                        wakers.extend(waiter.waker.take());
                        let queued = waiter.queued;
                        s.waiters.queue.pop_front();
                        s.wait_ended(queued, now);
                    }
                    _ => {
                        s.waiters.queue.pop_front();
                        s.waiters.release(id);
                    }
                }
            };
            self.publish_queue(&s);
            next
        };
        wakers.into_iter().for_each(Waker::wake);
        next
    }
}

/// A place in the waiters' queue, polled until a hand-off reaches it. Dropped before it
/// took one (a timeout, or the `get` future dropped), it marks its waiter cancelled, or
/// passes on a hand-off that already arrived: no connection or permit is lost, and the
/// next waiter is served instead.
#[derive(Debug)]
pub(crate) struct Waiting<'a, M: Manager> {
    inner: &'a Inner<M>,
    id: Option<WaiterId>,
    /// Not yet polled: the waker was registered when the checkout queued, in the same
    /// poll, so the first poll need not look (a hand-off since then woke the task).
    fresh: bool,
}

impl<'a, M: Manager> Waiting<'a, M> {
    /// Waits as waiter `id`, queued by [`Inner::acquire`] in this same poll of the task.
    pub(crate) fn new(inner: &'a Inner<M>, id: WaiterId) -> Self {
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
        let waiter = s.waiters.get_mut(id);
        let outcome = match std::mem::replace(&mut waiter.state, WaitState::Free) {
            WaitState::Queued => {
                waiter.state = WaitState::Queued;
                match &waiter.waker {
                    Some(waker) if waker.will_wake(cx.waker()) => {}
                    _ => waiter.waker = Some(cx.waker().clone()),
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
        s.waiters.release(id);
        drop(s);
        self.finish(outcome)
    }
}

impl<M: Manager> Drop for Waiting<'_, M> {
    fn drop(&mut self) {
        let Some(id) = self.id else { return };
        let mut s = self.inner.lock();
        let waiter = s.waiters.get_mut(id);
        match std::mem::replace(&mut waiter.state, WaitState::Free) {
            WaitState::Queued => {
                // Still in the queue: the next hand-off, sweep or expiry frees it.
                waiter.state = WaitState::Cancelled;
                waiter.waker = None;
                let queued = waiter.queued;
                s.wait_ended(queued, coarse_now());
            }
            WaitState::Delivered(handoff) => {
                s.waiters.release(id);
                drop(s);
                match handoff {
                    Handoff::Conn(checkout) => self.inner.put(checkout.live, false, false),
                    Handoff::Permit => self.inner.release_permit(true),
                }
            }
            _ => s.waiters.release(id),
        }
    }
}
