//! The pool's one background task: the evictor, the watcher of idle connections, and
//! the `min_idle` replenisher, with the timers it keeps.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior, Sleep};

use super::Inner;
use crate::pool::stats::Counters;
use crate::pool::Manager;
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::{Arc, Weak};
use crate::sys::clock::{coarse_now, CoarseTime};
use crate::util::deadline_after;

/// How long a connection sits idle before the watcher registers for its readiness
/// events. Connections returned and taken again within this time (the busy ones) never
/// meet the watcher; the ones that stay idle are watched within twice this time.
pub(crate) const WATCH_AFTER: Duration = Duration::from_millis(20);

impl<M: Manager> Inner<M> {
    /// Closes idle connections past their lifetime, and those idle longer than
    /// `idle_timeout` beyond `min_idle` (oldest first). The lanes are emptied into the
    /// idle list first, so that parked connections age and expire like the others.
    pub(super) fn evict(&self) {
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
        // Their permits are freed once they are closed, so that a connect made for a
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
    pub(super) fn poll_idle(
        &self,
        cx: &mut Context<'_>,
        seen: &mut u64,
    ) -> (usize, Option<CoarseTime>) {
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
    pub(super) fn go_quiet(&self) -> Option<CoarseTime> {
        self.watch_armed.store(false, Relaxed);
        let next = self.lanes.oldest().map(|since| since.add(WATCH_AFTER));
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
            let (parked, _) = self.lanes.tally();
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
