//! Cancellation: a `get()` future dropped at any await point (queued, after a hand-off
//! reached it, mid-connect) leaks nothing and loses no wake-up; waiters are served first
//! in, first out.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connhealth::pool::Pool;
use pool_support::Fakes;

async fn pool(fakes: &Fakes, max: usize) -> Pool<Fakes> {
    Pool::builder()
        .max_size(max)
        .get_timeout(Duration::from_secs(5))
        .build(fakes.clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_waiter_dropped_after_the_hand_off_reached_it_passes_it_on() {
    let fakes = Fakes::default();
    let pool = pool(&fakes, 1).await;
    let held = pool.get().await.unwrap();

    // First waiter: queued, then left unpolled.
    let mut first = Box::pin(pool.get());
    assert!(tokio::time::timeout(Duration::from_millis(10), &mut first)
        .await
        .is_err());
    // Second waiter, queued behind it.
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|c| c.id) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.stats().wait_count(), 2);

    drop(held); // handed to the first waiter, which is never polled again...
    drop(first); // ...and dropped: the connection must go on to the second.
    let got = tokio::time::timeout(Duration::from_secs(1), second).await;
    assert_eq!(
        got.expect("lost wake-up").unwrap().unwrap(),
        0,
        "the same connection"
    );
    assert_eq!(fakes.made.load(SeqCst), 1);
    let stats = pool.stats();
    assert_eq!((stats.size(), stats.idle()), (1, 1));
    assert_eq!(
        (stats.requests(), stats.successes()),
        (3, 2),
        "the dropped waiter's hand-off is not a success"
    );
    // The second waiter queued at least 10 ms; the coarse clock may round it down a tick.
    assert!(stats.wait_time() >= Duration::from_millis(6), "{stats:?}");
}

#[tokio::test]
async fn waiters_dropped_while_queued_leave_nothing_behind() {
    let fakes = Fakes::default();
    let pool = pool(&fakes, 1).await;
    let held = pool.get().await.unwrap();
    for _ in 0..100 {
        assert!(tokio::time::timeout(Duration::from_millis(1), pool.get())
            .await
            .is_err());
    }
    drop(held);
    let again = tokio::time::timeout(Duration::from_millis(100), pool.get()).await;
    assert_eq!(again.expect("returned connection was lost").unwrap().id, 0);
    assert_eq!(pool.stats().size(), 1);
    assert_eq!(fakes.made.load(SeqCst), 1);
}

#[tokio::test]
async fn a_wait_given_up_counts_in_the_wait_time() {
    let fakes = Fakes::default();
    let pool = pool(&fakes, 1).await;
    let _held = pool.get().await.unwrap();
    // The caller's own timeout drops the queued get after 30 ms.
    assert!(tokio::time::timeout(Duration::from_millis(30), pool.get())
        .await
        .is_err());
    let stats = pool.stats();
    assert_eq!(stats.wait_count(), 1);
    // The coarse clock may round the 30 ms down a tick.
    assert!(stats.wait_time() >= Duration::from_millis(20), "{stats:?}");
}

#[tokio::test]
async fn a_get_dropped_mid_connect_frees_its_slot() {
    let fakes = Fakes::default();
    fakes.delay_ms.store(200, SeqCst);
    let pool = pool(&fakes, 1).await;
    assert!(tokio::time::timeout(Duration::from_millis(20), pool.get())
        .await
        .is_err());
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(fakes.open.load(SeqCst), 0, "the connect was not cancelled");
    fakes.delay_ms.store(0, SeqCst);
    let conn = tokio::time::timeout(Duration::from_millis(100), pool.get()).await;
    assert!(conn.expect("slot leaked").is_ok());
}

#[tokio::test]
async fn a_get_dropped_mid_ping_closes_the_connection() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .ping_after_idle(Duration::ZERO)
        .build(fakes.clone())
        .await
        .unwrap();
    drop(pool.get().await.unwrap()); // a connection, now idle
                                     // The ping takes 1 ms; drop the get before it ends.
    let mut get = Box::pin(pool.get());
    assert!(futures_poll_once(&mut get).await);
    drop(get);
    // Its state is unknown after half a ping: closed, not returned, and not a success.
    let stats = pool.stats();
    assert_eq!(stats.size(), 0);
    assert_eq!(fakes.open.load(SeqCst), 0);
    assert_eq!((stats.requests(), stats.successes()), (2, 1));
    drop(pool.get().await.unwrap());
    assert_eq!(pool.stats().successes(), 2);
}

/// Polls a future once; true if it is still pending.
async fn futures_poll_once<F: std::future::Future + Unpin>(f: &mut F) -> bool {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::pin::Pin::new(&mut *f).poll(cx).is_pending())
    })
    .await
}

#[tokio::test]
async fn waiters_are_served_first_in_first_out() {
    let fakes = Fakes::default();
    let pool = pool(&fakes, 1).await;
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (pool, order) = (pool.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            let conn = pool.get().await.unwrap();
            order.lock().unwrap().push(i);
            tokio::time::sleep(Duration::from_millis(1)).await;
            drop(conn);
        }));
        // Let each queue before the next arrives.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    drop(held);
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(*order.lock().unwrap(), (0..8).collect::<Vec<_>>());
    assert_eq!(fakes.made.load(SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_of_cancelled_gets_leaks_nothing() {
    let fakes = Fakes::default();
    let pool = pool(&fakes, 2).await;
    let tasks: Vec<_> = (0..50u64)
        .map(|t| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut served = 0;
                for i in 0..200u64 {
                    // Give up after 0 to 3 scheduler turns: at every stage of a get.
                    let patience = (t * 7 + i * 13) % 4;
                    let get = pool.get();
                    tokio::pin!(get);
                    let mut got = None;
                    for _ in 0..=patience {
                        tokio::select! {
                            biased;
                            conn = &mut get => { got = Some(conn.unwrap()); break; }
                            _ = tokio::task::yield_now() => {}
                        }
                    }
                    if let Some(conn) = got {
                        served += 1;
                        tokio::task::yield_now().await;
                        drop(conn);
                    }
                }
                served
            })
        })
        .collect();
    let mut served = 0;
    for task in tasks {
        served += task.await.unwrap();
    }
    assert!(
        served > 0 && served < 50 * 200,
        "{served} served: no get was cancelled"
    );
    // Nothing leaked: both slots can be checked out, by the connections that exist.
    let a = tokio::time::timeout(Duration::from_secs(1), pool.get())
        .await
        .expect("leak")
        .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(1), pool.get())
        .await
        .expect("leak")
        .unwrap();
    assert_eq!(pool.stats().size(), 2);
    assert_eq!(fakes.open.load(SeqCst), 2);
    assert!(
        fakes.made.load(SeqCst) <= 2,
        "connections were lost and reopened"
    );
    drop((a, b));
    assert_eq!(pool.stats().idle(), 2);
}
