//! The checkout: the first step a `get` takes under the locks, and the loop that
//! drives it to a connection (judge an idle one, connect, or wait for a hand-off).

use std::future::{poll_fn, Future};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use super::waiters::{Handoff, Waited, Waiting};
use super::{wake_unlocked, Checkout, ConnectPermit, Inner, Step};
use crate::pool::stats::Counters;
use crate::pool::{Manager, PoolError, Pooled};
use crate::sync::atomic::Ordering::Relaxed;
use crate::sync::Arc;
use crate::sys::clock::{coarse_now, CoarseTime};
use crate::util::deadline_after;

impl<M: Manager> Inner<M> {
    /// [`Pool::get`](crate::pool::Pool::get): checks out a connection, first come first
    /// served, within `get_timeout`. Dropping the future at any point leaks nothing.
    pub(crate) async fn get(self: &Arc<Self>) -> Result<Pooled<M>, PoolError<M::Error>> {
        let mut deadline = Deadline::Unset;
        // Polled once, to hand `acquire` the task's waker: a checkout that must queue
        // registers it under the lock it queues under.
        let mut step = poll_fn(|cx| Poll::Ready(self.acquire(cx))).await;
        loop {
            step = match step {
                Step::Idle(Checkout {
                    live,
                    idle_for,
                    expired,
                }) => {
                    // The guard comes first: from here a dropped future returns the
                    // connection to the pool.
                    let mut conn = Pooled {
                        live: Some(live),
                        inner: Arc::clone(self),
                        unusable: false,
                    };
                    let failed = if expired {
                        Some(&self.counters.lifetime_closed)
                    } else if self.manager.check(&conn).is_closed() {
                        Some(&self.counters.check_failed)
                    } else if self
                        .config
                        .ping_after_idle
                        .is_some_and(|after| idle_for >= after)
                    {
                        // Cancelled or timed out mid-ping, the connection's state is
                        // unknown: it is closed, not returned, and its checkout is
                        // counted as rejected until the ping says otherwise.
                        conn.unusable = true;
                        Counters::bump(&self.counters.rejected, 1);
                        let ping = self.manager.ping(&mut conn);
                        match self.bounded(&mut deadline, ping).await {
                            Ok(Ok(())) => {
                                self.counters.rejected.fetch_sub(1, Relaxed);
                                None
                            }
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "pool: ping failed at checkout");
                                Some(&self.counters.ping_failed)
                            }
                            Err(timeout) => return Err(timeout),
                        }
                    } else {
                        None
                    };
                    match failed {
                        None => {
                            conn.unusable = false;
                            return self.hand_out(conn);
                        }
                        Some(counter) => {
                            Counters::bump(counter, 1);
                            if !conn.unusable {
                                // (A failed ping was counted as rejected before it ran.)
                                Counters::bump(&self.counters.rejected, 1);
                            }
                            // Close it but keep its permit: the next step reuses it.
                            self.close_keeping_permit(conn.live.take());
                            drop(conn);
                            self.reacquire(coarse_now())
                        }
                    }
                }
                Step::Connect => {
                    let permit = ConnectPermit::new(Arc::clone(self));
                    if self.is_closed() {
                        // A permit handed over before the close: no connect for a closed
                        // pool.
                        return Err(PoolError::Closed);
                    }
                    match self.bounded(&mut deadline, self.manager.connect()).await {
                        Ok(Ok(conn)) => {
                            permit.disarm();
                            self.connected();
                            return self.hand_out(Pooled {
                                live: Some(self.live(conn)),
                                inner: Arc::clone(self),
                                unusable: false,
                            });
                        }
                        Ok(Err(err)) => {
                            Counters::bump(&self.counters.connect_errors, 1);
                            drop(permit); // hands the permit to the next waiter
                            return Err(PoolError::Connect(err));
                        }
                        Err(timeout) => return Err(timeout),
                    }
                }
                Step::Wait {
                    waiter,
                    deadline: at,
                } => {
                    // No timer of our own: the pool's background task times waiters out.
                    deadline = Deadline::Queued(at);
                    match Waiting::new(self, waiter).await {
                        Waited::Handoff(Handoff::Conn(checkout)) => Step::Idle(checkout),
                        Waited::Handoff(Handoff::Permit) => Step::Connect,
                        Waited::Closed => return Err(PoolError::Closed),
                        Waited::TimedOut => {
                            Counters::bump(&self.counters.timeouts, 1);
                            return Err(PoolError::Timeout);
                        }
                    }
                }
                Step::Closed => return Err(PoolError::Closed),
            }
        }
    }

    /// Hands out a checked-out connection, unless the pool was closed meanwhile (a
    /// hand-off that reached a waiter just before the close, a connect or ping in
    /// flight): then the connection is closed and the `get` fails, so that no `get`
    /// succeeds once `close` has returned.
    fn hand_out(&self, conn: Pooled<M>) -> Result<Pooled<M>, PoolError<M::Error>> {
        if self.is_closed() {
            Counters::bump(&self.counters.rejected, 1);
            drop(conn); // closed on its return to a closed pool
            return Err(PoolError::Closed);
        }
        Ok(conn)
    }

    /// Runs `fut` until the get's deadline, set when the first await of this `get`
    /// starts, so that the fast path never arms a timer.
    async fn bounded<F: Future>(
        &self,
        deadline: &mut Deadline,
        fut: F,
    ) -> Result<F::Output, PoolError<M::Error>> {
        let at = deadline.instant(self.config.get_timeout);
        tokio::time::timeout_at(at, fut).await.map_err(|_| {
            Counters::bump(&self.counters.timeouts, 1);
            PoolError::Timeout
        })
    }

    /// The first step of a checkout: the connection parked in this CPU's lane, else an
    /// idle one from the shared list or another lane, else a permit to connect with
    /// (counted before the connect starts, so `max_size` holds while connects stall),
    /// else a place in the queue, with a deadline `get_timeout` from now. When the pool
    /// must grow, `grow_by - 1` extra permits are reserved for background connects. A
    /// queued checkout registers `cx`'s waker in the same critical section.
    pub(crate) fn acquire(self: &Arc<Self>, cx: &Context<'_>) -> Step<M::Connection> {
        if self.lanes_open() {
            if let Some(idle) = self.lanes.take() {
                return idle.checkout(coarse_now());
            }
        }
        self.acquire_shared(cx)
    }

    /// A checkout that this CPU's lane could not serve.
    pub(super) fn acquire_shared(self: &Arc<Self>, cx: &Context<'_>) -> Step<M::Connection> {
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
            None if s.waiters.is_empty() && s.size < self.config.max_size => self.lanes.steal(),
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
    /// After a checked-out connection was found unusable and dropped: its permit is still
    /// ours. Take another idle connection (giving the permit back), else keep the permit and
    /// connect.
    pub(crate) fn reacquire(&self, now: CoarseTime) -> Step<M::Connection> {
        let mut s = self.lock();
        if self.is_closed() {
            s.size -= 1;
            return Step::Closed;
        }
        if let Some(idle) = s.idle.pop_back() {
            // Idle connections exist only while no live waiter does, so the permit given
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

    /// Counts `n` permits as connects in flight (the `min_idle` connects at build).
    pub(crate) fn reserve_connects(&self, n: usize) {
        let mut s = self.lock();
        s.size += n;
        s.connecting += n;
    }

    /// A connect for a checkout succeeded: the permit now holds an open connection.
    pub(crate) fn connected(&self) {
        let mut s = self.lock();
        s.connecting -= 1;
        s.checkouts += 1;
    }
}

/// A `get`'s deadline, fixed when first needed, so that a checkout that never awaits
/// reads no clock.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// Nothing has awaited yet.
    Unset,
    /// A wait in the queue began it: this instant on the coarse clock.
    Queued(CoarseTime),
    /// On the runtime's clock, for a timer.
    At(Instant),
}

impl Deadline {
    /// The deadline on the runtime's clock: `timeout` from now if none is set yet.
    fn instant(&mut self, timeout: Duration) -> Instant {
        let at = match *self {
            Deadline::At(at) => at,
            Deadline::Queued(at) => deadline_after(Instant::now(), at.since(coarse_now())),
            Deadline::Unset => deadline_after(Instant::now(), timeout),
        };
        *self = Deadline::At(at);
        at
    }
}
