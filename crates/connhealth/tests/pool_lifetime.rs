//! Lifetimes and idle timeouts: jitter spreads a cohort's deaths; lifetime is checked on
//! return, so an always-busy connection expires; idle connections beyond `min_idle`
//! are closed after `idle_timeout`.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::Pool;
use pool_support::Fakes;

/// Opens `n` connections at once, returns them, and records when each expires (as seen
/// by an evictor running every 5 ms): returns (first, last) expiry after opening.
async fn cohort_expiry(n: usize, lifetime: Duration, jitter: Option<f64>) -> (Duration, Duration) {
    let fakes = Fakes::default();
    let mut builder = Pool::builder();
    if let Some(jitter) = jitter {
        builder = builder.lifetime_jitter(jitter);
    }
    let pool = builder
        .max_size(n)
        .max_lifetime(lifetime)
        .evict_interval(Duration::from_millis(5))
        .watch_idle(false)
        .build(fakes.clone())
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    let mut held = Vec::new();
    for _ in 0..n {
        held.push(pool.get().await.unwrap());
    }
    drop(held);
    let mut first = None;
    loop {
        let closed = pool.stats().lifetime_closed();
        if closed > 0 && first.is_none() {
            first = Some(start.elapsed());
        }
        if closed == n as u64 {
            return (first.unwrap(), start.elapsed());
        }
        assert!(start.elapsed() < lifetime * 3, "{:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn jitter_spreads_a_cohorts_lifetimes() {
    let lifetime = Duration::from_millis(400);
    let (first, last) = cohort_expiry(20, lifetime, Some(0.5)).await;
    // Uniform over 200..600 ms: 20 draws span far more than 150 ms.
    assert!(first >= Duration::from_millis(190), "{first:?}");
    assert!(last <= Duration::from_millis(900), "{last:?}");
    assert!(
        last - first >= Duration::from_millis(150),
        "{first:?}..{last:?}"
    );

    // Without jitter, the whole cohort dies at once: what the jitter prevents.
    let (first, last) = cohort_expiry(20, Duration::from_millis(200), Some(0.0)).await;
    assert!(
        last - first <= Duration::from_millis(40),
        "{first:?}..{last:?}"
    );
}

#[tokio::test]
async fn the_default_jitter_is_ten_percent() {
    let (first, last) = cohort_expiry(20, Duration::from_millis(500), None).await;
    assert!(first >= Duration::from_millis(445), "{first:?}");
    assert!(last <= Duration::from_millis(800), "{last:?}");
    assert!(
        last - first >= Duration::from_millis(20),
        "{first:?}..{last:?}"
    );
}

#[tokio::test]
async fn an_always_busy_connection_expires_on_return() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .max_lifetime(Duration::from_millis(50))
        .lifetime_jitter(0.0)
        .evict_interval(Duration::from_secs(3600))
        .build(fakes.clone())
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await; // busy past its lifetime
    drop(conn);
    assert_eq!(pool.stats().lifetime_closed(), 1);
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(fakes.open.load(SeqCst), 0);
    assert_eq!(pool.get().await.unwrap().id, 1, "a fresh connection");
}

#[tokio::test]
async fn idle_connections_beyond_min_idle_time_out() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(1)
        .idle_timeout(Duration::from_millis(60))
        .evict_interval(Duration::from_millis(10))
        .build(fakes.clone())
        .await
        .unwrap();
    let held: Vec<_> = vec![
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    drop(held);
    assert_eq!(pool.stats().idle(), 3);
    let trimmed =
        pool_support::eventually(Duration::from_secs(1), || pool.stats().idle() == 1).await;
    let took = trimmed.expect("idle connections never timed out");
    assert!(took >= Duration::from_millis(50), "{took:?}");
    assert_eq!(pool.stats().idle_closed(), 2);
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(pool.stats().idle(), 1, "min_idle is kept past idle_timeout");
}
