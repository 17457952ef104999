//! The races between a return that parks its connection in a lane and a checkout
//! that queues, or a watcher that goes quiet, on another core. A test through the
//! public API meets the narrowest of them only by luck (`tests/pool_cores.rs` runs
//! them for real); here each thread's steps run one after the other, in the order
//! that would strand a connection if a check were missing. `loom_models` runs every
//! order of the same races (`scripts/loom`).

use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Waker};
use std::time::Duration;

use super::lanes::Lane;
use super::maintenance::WATCH_AFTER;
use super::test_support::{CountWakes, Numbers};
use super::waiters::WaitState;
use super::*;
use crate::Status;

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
) -> (&Lane<M::Connection>, CoarseTime) {
    let now = coarse_now();
    let Ok(Parked {
        lane,
        displaced: None,
    }) = park(inner, live, now)
    else {
        panic!("an empty lane takes the connection");
    };
    inner.parked(lane, now);
    (lane, now)
}

/// Parks `live` in this CPU's lane, as a return does.
fn park<M: Manager>(
    inner: &Inner<M>,
    live: Live<M::Connection>,
    now: CoarseTime,
) -> Result<Parked<'_, M::Connection>, Idle<M::Connection>> {
    let idle = Idle {
        live,
        since: now,
        watched: false,
    };
    inner.lanes.park(idle, &inner.closed)
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
    let Step::Wait { waiter: id, .. } = inner.acquire(&Context::from_waker(&waker)) else {
        panic!("the pool is at max_size with nothing idle: the checkout must queue");
    };
    // The return parks its connection; once it lets go of the lane, it reads
    // `queued` again, and must hand the connection to the waiter.
    let (lane, _) = return_to_lane(&inner, live);
    let s = inner.lock();
    assert!(
        matches!(
            s.waiters.get(id).state,
            WaitState::Delivered(Handoff::Conn(..))
        ),
        "the connection reached the waiter"
    );
    assert_eq!(wakes.count(), 1, "and woke it");
    assert!(lane.take().is_none());
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
        Step::Idle(Checkout {
            live: Live { conn: 7, .. },
            expired: false,
            ..
        })
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
    assert_eq!(wakes.count(), 1);
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
    let Step::Wait { waiter: id, .. } = inner.acquire(&Context::from_waker(&waker)) else {
        panic!("the pool is at max_size with nothing idle: the checkout must queue");
    };
    // A return parks its connection just as the checkout queued, and is held up
    // (preempted) before it reads `queued`: the connection sits in the lane.
    assert!(park(&inner, live, coarse_now()).is_ok());
    std::thread::sleep(Duration::from_millis(20));
    // The evictor finds it there and hands it to the waiter: idle 20 ms, and past
    // its 1 ms lifetime, which the checkout must see to close it.
    inner.evict();
    let s = inner.lock();
    match &s.waiters.get(id).state {
        WaitState::Delivered(Handoff::Conn(checkout)) => {
            assert!(checkout.expired, "its lifetime is over");
            // The coarse clock may round the 20 ms down by a tick.
            let idle_for = checkout.idle_for;
            assert!(
                idle_for >= Duration::from_millis(10),
                "idle for {idle_for:?}"
            );
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
fn an_evicted_connection_frees_its_permit_only_once_closed() {
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
    // The evictor is closing the connection: a checkout now must wait for its permit,
    // not open a second connection beside it.
    let waker = Waker::from(Arc::new(CountWakes::default()));
    let step = inner.acquire(&Context::from_waker(&waker));
    let Step::Wait { waiter: id, .. } = step else {
        panic!("max_size 1, one connection still closing, and the checkout got {step:?}");
    };
    finish.store(true, SeqCst);
    evictor.join().unwrap();
    assert!(matches!(
        inner.lock().waiters.get(id).state,
        WaitState::Delivered(Handoff::Permit)
    ));
}

#[test]
fn no_connection_is_parked_after_a_close() {
    let (inner, live) = pool_at_max(false);
    inner.close();
    assert!(
        park(&inner, live, coarse_now()).is_err(),
        "it is closed instead"
    );
}
