//! `get_timeout`: an exhausted pool, or a stalled connect, gives up on time with
//! `PoolError::Timeout`, and the slot is not lost.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::{Duration, Instant};

use connhealth::pool::{Pool, PoolError};
use pool_support::Fakes;

#[tokio::test]
async fn an_exhausted_pool_times_out() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_millis(100))
        .build(fakes.clone())
        .await
        .unwrap();
    let held = pool.get().await.unwrap();
    let start = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = start.elapsed();
    assert!(matches!(err, PoolError::Timeout), "{err}");
    assert!(
        err.to_string().contains("get_timeout"),
        "the message says what to change"
    );
    assert!(
        took >= Duration::from_millis(95) && took < Duration::from_secs(1),
        "{took:?}"
    );
    let stats = pool.stats();
    assert_eq!((stats.timeouts(), stats.wait_count()), (1, 1));
    assert!(stats.wait_time() >= Duration::from_millis(90));
    drop(held);
    assert!(pool.get().await.is_ok());
}

#[tokio::test]
async fn a_stalled_connect_times_out_and_frees_its_slot() {
    let fakes = Fakes::default();
    fakes.delay_ms.store(5000, SeqCst);
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_millis(50))
        .build(fakes.clone())
        .await
        .unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Timeout), "{err}");
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(fakes.open.load(SeqCst), 0);
    fakes.delay_ms.store(0, SeqCst);
    assert!(pool.get().await.is_ok());
}
