//! The checkout check runs on every `get`; `ping` only where configured: after the
//! connection sat idle for `ping_after_idle`. A failed check or ping drops the connection
//! and the `get` gets another.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::Pool;
use pool_support::Fakes;

#[tokio::test]
async fn a_connection_that_fails_its_check_is_replaced() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(2)
        .build(fakes.clone())
        .await
        .unwrap();
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let (a_id, b_id) = (a.id, b.id);
    drop((a, b));
    fakes.mark_dead(b_id); // the most recently returned, taken first
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, a_id, "the live idle connection, not a new one");
    assert_eq!(pool.stats().check_failed(), 1);
    fakes.mark_dead(a_id);
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.id, 2, "a fresh connection in the dead one's slot");
    assert_eq!(pool.stats().check_failed(), 2);
    assert_eq!(pool.stats().size(), 1);
    assert_eq!(fakes.pings.load(SeqCst), 0, "no ping unless configured");
    let stats = pool.stats();
    assert_eq!(
        (stats.requests(), stats.successes()),
        (4, 4),
        "a checkout that failed its check is not a success"
    );
}

#[tokio::test]
async fn ping_runs_only_after_the_configured_idle_time() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .ping_after_idle(Duration::from_millis(50))
        .build(fakes.clone())
        .await
        .unwrap();
    drop(pool.get().await.unwrap());
    drop(pool.get().await.unwrap()); // idle for no time: no ping
    assert_eq!(fakes.pings.load(SeqCst), 0);
    tokio::time::sleep(Duration::from_millis(70)).await;
    drop(pool.get().await.unwrap());
    assert_eq!(fakes.pings.load(SeqCst), 1);

    fakes.ping_fails.store(true, SeqCst);
    tokio::time::sleep(Duration::from_millis(70)).await;
    let conn = pool.get().await.unwrap();
    assert_eq!(
        conn.id, 1,
        "the connection that failed its ping was replaced"
    );
    assert_eq!(pool.stats().ping_failed(), 1);
    assert_eq!(pool.stats().successes(), 4);
}
