//! Out-of-range settings are brought into range, never a panic; the defaults make a
//! working pool; a runtime the pool cannot work on is refused at build.

mod pool_support;

use std::time::Duration;

use connhealth::pool::{Pool, PoolError};
use pool_support::Fakes;

#[tokio::test]
async fn extreme_settings_neither_panic_nor_break_the_pool() {
    let pool = Pool::builder()
        .max_size(0) // taken as 1
        .min_idle(5) // at most max_size
        .grow_by(0)
        .idle_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .lifetime_jitter(f64::NAN)
        .get_timeout(Duration::MAX)
        .evict_interval(Duration::MAX)
        .ping_after_idle(Duration::MAX)
        .build(Fakes::default())
        .await
        .unwrap();
    assert_eq!(pool.stats().idle(), 1);
    let conn = pool.get().await.unwrap();
    assert_eq!(pool.stats().size(), 1);
    let waiting = tokio::time::timeout(Duration::from_millis(20), pool.get()).await;
    assert!(waiting.is_err(), "max_size 0 was taken as 1");
    drop(conn);
    assert!(pool.get().await.is_ok());

    let zero = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::ZERO)
        .evict_interval(Duration::ZERO)
        .max_lifetime(Duration::ZERO)
        .lifetime_jitter(7.0)
        .build(Fakes::default())
        .await
        .unwrap();
    let held = zero.get().await.unwrap();
    assert!(matches!(zero.get().await, Err(PoolError::Timeout)));
    drop(held); // lifetime zero: closed on return
    assert_eq!(zero.stats().size(), 0);

    let unbounded = Pool::builder()
        .max_size(usize::MAX)
        .build(Fakes::default())
        .await
        .unwrap();
    let conns: Vec<_> = futures_all(&unbounded, 3).await;
    assert_eq!(unbounded.stats().size(), 3);
    drop(conns);
    assert_eq!(unbounded.stats().idle(), 3);
}

#[tokio::test]
async fn the_defaults_make_a_working_pool() {
    let pool = Pool::builder().build(Fakes::default()).await.unwrap();
    let conns: Vec<_> = futures_all(&pool, 10).await;
    assert_eq!(pool.stats().size(), 10, "max_size defaults to 10");
    drop(conns);
    assert_eq!(pool.stats().idle(), 10);
}

async fn futures_all(pool: &Pool<Fakes>, n: usize) -> Vec<connhealth::pool::Pooled<Fakes>> {
    let mut v = Vec::new();
    for _ in 0..n {
        v.push(pool.get().await.unwrap());
    }
    v
}

/// Without the runtime's time driver no get could ever time out: the build says so at
/// once, before it opens anything, rather than leave a dead background task behind.
#[test]
fn a_runtime_without_timers_is_refused_at_build() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let fakes = Fakes::default();
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(Pool::builder().min_idle(2).build(fakes.clone()))
    }));
    let err = built.expect_err("the build went ahead without timers");
    let msg = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    assert!(msg.contains("enable_time"), "{msg}");
    assert_eq!(fakes.made.load(std::sync::atomic::Ordering::SeqCst), 0);
}
