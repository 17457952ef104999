//! `max_size` holds under contention while connects fail and stall at random, and no
//! slot leaks: afterwards the whole pool can still be checked out.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, PoolError};
use pool_support::Fakes;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_size_holds_while_connects_fail_and_stall() {
    const MAX: usize = 5;
    let fakes = Fakes::default();
    fakes.chaos.store(true, SeqCst);
    let pool = Pool::builder()
        .max_size(MAX)
        .grow_by(3)
        .max_lifetime(Duration::from_millis(150)) // churn: connections keep expiring
        .get_timeout(Duration::from_millis(200))
        .build(fakes.clone())
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for t in 0..100 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0, 0);
            for i in 0..30 {
                match pool.get().await {
                    Ok(mut conn) => {
                        ok += 1;
                        assert!(pool.stats().size() <= MAX);
                        if (t + i) % 7 == 0 {
                            tokio::task::yield_now().await;
                        }
                        if (t + i) % 11 == 0 {
                            conn.mark_unusable();
                        }
                    }
                    Err(PoolError::Timeout | PoolError::Connect(_)) => failed += 1,
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            (ok, failed)
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap().0;
    }
    assert!(ok > 100, "the pool served too little: {ok}");
    assert!(
        fakes.peak.load(SeqCst) <= MAX,
        "{} connections open or connecting at once, max_size {MAX}",
        fakes.peak.load(SeqCst)
    );

    // No slot leaked: stalled connects end (or are cancelled), then every slot can be
    // checked out at once.
    fakes.chaos.store(false, SeqCst);
    let stats =
        pool_support::eventually(Duration::from_secs(10), || pool.stats().connecting() == 0).await;
    assert!(
        stats.is_some(),
        "connects still in flight: {:?}",
        pool.stats()
    );
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(pool.get().await.expect("a slot leaked"));
    }
    assert_eq!(pool.stats().size(), MAX);
    assert_eq!(pool.stats().active(), MAX);
    assert!(fakes.peak.load(SeqCst) <= MAX);
    drop(held);
    let stats = pool.stats();
    assert_eq!(stats.requests(), 3000 + MAX as u64);
    assert!(
        stats.connect_errors() > 0 && stats.timeouts() > 0,
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_failed_connect_gives_its_slot_to_the_next_waiter() {
    let fakes = Fakes::default();
    fakes.fail_next.store(1, SeqCst);
    fakes.delay_ms.store(30, SeqCst);
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_secs(2))
        .build(fakes.clone())
        .await
        .unwrap();
    // The first get takes the only slot and connects; the second queues behind it.
    let first = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    assert!(matches!(first.await.unwrap(), Err(PoolError::Connect(_))));
    // The freed slot went to the waiter, which connected instead of timing out.
    second
        .await
        .unwrap()
        .expect("the waiter got the freed slot");
    assert_eq!(pool.stats().connect_errors(), 1);
    assert_eq!(pool.stats().size(), 1);
}

#[tokio::test]
async fn grow_by_opens_a_batch() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(8)
        .grow_by(4)
        .build(fakes.clone())
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    let grown = pool_support::eventually(Duration::from_secs(2), || pool.stats().idle() == 3).await;
    assert!(grown.is_some(), "{:?}", pool.stats());
    assert_eq!(pool.stats().size(), 4);
    drop(conn);
    // A batch never passes max_size.
    let held: Vec<_> = futures_join(&pool, 8).await;
    assert_eq!(pool.stats().size(), 8);
    assert!(fakes.peak.load(SeqCst) <= 8);
    drop(held);
}

async fn futures_join(pool: &Pool<Fakes>, n: usize) -> Vec<connhealth::pool::Pooled<Fakes>> {
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    held
}

#[tokio::test]
async fn min_idle_is_opened_at_build_and_a_failure_fails_the_build() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(3)
        .build(fakes.clone())
        .await
        .unwrap();
    assert_eq!(pool.stats().idle(), 3);
    assert_eq!(fakes.made.load(SeqCst), 3);

    let broken = Fakes::default();
    broken.failing.store(true, SeqCst);
    let err = Pool::builder()
        .min_idle(2)
        .build(broken.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused"), "{err}");
    assert_eq!(
        broken.open.load(SeqCst),
        0,
        "a failed build left connections open"
    );
}
