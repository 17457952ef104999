//! loom models of the protocols the [module documentation](super) describes, run by
//! `scripts/loom` (`--cfg connhealth_loom`, where [`crate::sync`] is loom's).
//!
//! Each model runs the pool's own code: `Pool::get` polled by hand, `Pooled`'s drop,
//! `Inner::close`, and the background task's steps. loom threads stand for tasks on
//! different cores (each says which CPU, and so which lane, it stands for), and a waker
//! that counts its wakes stands for the executor. Two seams let the models run without
//! tokio's runtime: the background task, a `poll_fn` over `Inner::expire_waiters` and
//! `Inner::poll_idle` on tokio timers, is driven by calling those two steps on a model
//! thread; and the pools here are built with `Inner::with_lanes`, so that a pool of one
//! connection has two lanes on any machine. No model connects: each pool starts at its
//! `max_size` with its one connection checked out, so no `get` reaches tokio's timers.
//!
//! Each model says which line defends it; with that line removed, loom finds the
//! interleaving that breaks it (the list, with what loom printed, is in the pool's
//! issue note).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use loom::thread;

use super::lanes::model_cpu::run_on;
use super::test_support::{CountWakes, Numbers};
use super::{Config, Inner};
use crate::pool::{Pool, PoolError, Pooled};
use crate::sync::Arc;

/// How many preemptions loom explores per execution, unless `LOOM_MAX_PREEMPTIONS`
/// says. Every protocol here is one race between two threads, and each defence is
/// broken by an order that needs at most two preemptions; three keep a margin. At 3
/// the models take at most 80 executions each (a few milliseconds), and an unbounded
/// search at most 190, so the bound is there for models yet to come.
const PREEMPTIONS: usize = 3;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(PREEMPTIONS);
    }
    builder.check(f);
}

/// A task polled by hand, woken through a [`CountWakes`].
struct Task<T> {
    future: Pin<Box<dyn Future<Output = T> + Send>>,
    wakes: std::sync::Arc<CountWakes>,
}

impl<T> Task<T> {
    fn new(future: impl Future<Output = T> + Send + 'static) -> Task<T> {
        Task {
            future: Box::pin(future),
            wakes: std::sync::Arc::default(),
        }
    }

    fn poll(&mut self) -> Poll<T> {
        let waker = Waker::from(std::sync::Arc::clone(&self.wakes));
        self.future.as_mut().poll(&mut Context::from_waker(&waker))
    }

    fn wakes(&self) -> usize {
        self.wakes.count()
    }
}

type Get = Task<Result<Pooled<Numbers>, PoolError<std::io::Error>>>;

/// A `get` on `pool`, polled once: it must queue.
fn queued_get(pool: &Pool<Numbers>) -> Get {
    let mut get = new_get(pool);
    assert!(
        get.poll().is_pending(),
        "the pool is at max_size: the get queues"
    );
    get
}

fn new_get(pool: &Pool<Numbers>) -> Get {
    let pool = pool.clone();
    Task::new(async move { pool.get().await })
}

/// A pool of one connection with two lanes, that connection checked out.
fn pool_at_max(watch_idle: bool) -> (Pool<Numbers>, Pooled<Numbers>) {
    let config = Config {
        max_size: 1,
        min_idle: 0,
        grow_by: 1,
        idle_timeout: None,
        max_lifetime: None,
        lifetime_jitter: 0.0,
        get_timeout: Duration::from_secs(30),
        evict_interval: Duration::from_secs(30),
        ping_after_idle: None,
        watch_idle,
    };
    let inner = Arc::new(Inner::with_lanes(Numbers, config, 2));
    inner.reserve_connects(1);
    inner.connected();
    let held = Pooled {
        live: Some(inner.live(7)),
        inner: Arc::clone(&inner),
        unusable: false,
    };
    (Pool { inner }, held)
}

/// The hand-off to the oldest waiter: a connection returned while checkouts wait goes
/// to the oldest of them, and a newcomer on the returning core cannot take it first
/// (from the lane the return may park in). Defended by `Inner::lanes_open`: while anyone
/// waits, checkouts and returns skip the lanes (and by `Waiters::next`, which takes the
/// front of the queue).
#[test]
fn loom_a_return_goes_to_the_oldest_waiter_not_a_newcomer() {
    model(|| {
        let (pool, held) = pool_at_max(false);
        let mut oldest = queued_get(&pool);
        let mut second = queued_get(&pool);
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        let newcomer = thread::spawn({
            let pool = pool.clone();
            move || {
                run_on(0);
                let mut get = new_get(&pool);
                let overtook = get.poll().is_ready();
                (get, overtook)
            }
        });
        returner.join().unwrap();
        let (newcomer, overtook) = newcomer.join().unwrap();
        assert!(
            !overtook,
            "a newcomer took the connection ahead of the oldest waiter"
        );
        assert_eq!(oldest.wakes(), 1, "the oldest waiter is woken once");
        let Poll::Ready(Ok(conn)) = oldest.poll() else {
            panic!("the oldest waiter has the connection");
        };
        assert_eq!(second.wakes(), 0, "the second waiter waits on");
        assert!(second.poll().is_pending());
        drop((conn, newcomer));
    });
}

/// A return that parks its connection in its lane while a checkout queues on another
/// core: the connection reaches the checkout, whichever of the two went first. Defended
/// from both sides: the return reads `queued` after it let go of its lane
/// (`Inner::parked`), and the checkout looks in every lane after it set `queued`
/// (`Inner::enqueue`).
#[test]
fn loom_a_return_parked_as_a_checkout_queues_reaches_it() {
    model(|| {
        let (pool, held) = pool_at_max(false);
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        let checkout = thread::spawn({
            let pool = pool.clone();
            move || {
                run_on(1);
                let mut get = new_get(&pool);
                let got = get.poll().is_ready();
                (get, got)
            }
        });
        returner.join().unwrap();
        let (mut get, got) = checkout.join().unwrap();
        if !got {
            assert_eq!(get.wakes(), 1, "the connection was stranded in a lane");
            assert!(matches!(get.poll(), Poll::Ready(Ok(_))));
        }
    });
}

/// A waiter whose `get` is dropped as a connection is handed to it: the connection
/// comes back to the pool, whichever went first. Defended by `Waiting`'s `Drop`, which
/// returns a connection that reached it (and by `Waiters::next`, which skips a waiter
/// that was cancelled first).
#[test]
fn loom_a_waiter_dropped_as_a_handoff_reaches_it_loses_nothing() {
    model(|| {
        let (pool, held) = pool_at_max(false);
        let waiter = queued_get(&pool);
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        let canceller = thread::spawn(move || {
            run_on(1);
            drop(waiter);
        });
        returner.join().unwrap();
        canceller.join().unwrap();
        let stats = pool.stats();
        assert_eq!(
            (stats.size(), stats.idle()),
            (1, 1),
            "the connection is back in the pool"
        );
        assert!(matches!(new_get(&pool).poll(), Poll::Ready(Ok(_))));
    });
}

/// The idle watcher going quiet as a connection is parked: either the watcher finds the
/// connection (and keeps its timer for it), or the return wakes it. Defended by the
/// same hand-shake as a queueing checkout: the return reads `watch_armed` after it let
/// go of its lane (`Inner::parked`), and the watcher looks in every lane after it
/// cleared `watch_armed` (`Inner::go_quiet`).
#[test]
fn loom_the_watcher_going_quiet_as_a_connection_is_parked_misses_nothing() {
    model(|| {
        let (pool, held) = pool_at_max(true);
        let inner = Arc::clone(&pool.inner);
        // The background task registers its waker and looks once while checkouts go on
        // (`seen` is not the count of requests): its timer runs, the watcher is armed.
        let task = Task::new(std::future::pending::<()>());
        let waker = Waker::from(std::sync::Arc::clone(&task.wakes));
        let mut cx = Context::from_waker(&waker);
        inner.expire_waiters(&mut cx, &mut false);
        let mut seen = u64::MAX;
        assert!(inner.poll_idle(&mut cx, &mut seen).1.is_some());
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        // Its timer fires, no checkout came: it looks again, and goes quiet.
        let watcher = thread::spawn({
            let inner = Arc::clone(&inner);
            move || {
                run_on(1);
                let waker = Waker::from(std::sync::Arc::clone(&task.wakes));
                let (_, next) = inner.poll_idle(&mut Context::from_waker(&waker), &mut seen);
                (task, next)
            }
        });
        returner.join().unwrap();
        let (task, next) = watcher.join().unwrap();
        let unwatched = inner.lanes.tally().0 > 0 || inner.lock().idle.iter().any(|i| !i.watched);
        assert!(
            !unwatched || next.is_some() || task.wakes() > 0,
            "a parked connection is left unwatched, and the watcher quiet"
        );
    });
}

/// `close()` racing a hand-off to a waiter: the waiter's `get` fails with `Closed` once
/// `close` has returned, and the connection is closed, not handed out. Defended by the
/// check of `closed` before a connection is handed out (`Inner::hand_out`).
#[test]
fn loom_close_racing_a_handoff_hands_nothing_out() {
    model(|| {
        let (pool, held) = pool_at_max(false);
        let mut waiter = queued_get(&pool);
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        let closer = thread::spawn({
            let pool = pool.clone();
            move || {
                run_on(1);
                pool.inner.close();
            }
        });
        returner.join().unwrap();
        closer.join().unwrap();
        assert!(waiter.wakes() >= 1, "the waiter is woken");
        assert!(
            matches!(waiter.poll(), Poll::Ready(Err(PoolError::Closed))),
            "a get succeeded after close() returned"
        );
        let stats = pool.stats();
        assert_eq!(
            (stats.size(), stats.idle()),
            (0, 0),
            "the connection is closed"
        );
    });
}

/// `close()` racing a return that parks in its lane: the connection is closed, not left
/// in the lane. Defended by `Lanes::park`, which reads `closed` under the lane's lock
/// (`close` sets it before it drains the lanes).
#[test]
fn loom_close_racing_a_park_leaves_no_connection_in_a_lane() {
    model(|| {
        let (pool, held) = pool_at_max(false);
        let returner = thread::spawn(move || {
            run_on(0);
            drop(held);
        });
        let closer = thread::spawn({
            let pool = pool.clone();
            move || {
                run_on(1);
                pool.inner.close();
            }
        });
        returner.join().unwrap();
        closer.join().unwrap();
        let stats = pool.stats();
        assert_eq!(
            (stats.size(), stats.idle()),
            (0, 0),
            "the connection is closed"
        );
    });
}
