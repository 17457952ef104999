//! `mark_unusable` closes a connection instead of returning it; `detach` takes it out of
//! the pool for good. Both free the slot.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, Pooled, TcpManager};
use pool_support::{eventually, roundtrip, Echo};

async fn setup() -> (Echo, Pool<TcpManager>) {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_secs(2))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    (server, pool)
}

#[tokio::test]
async fn an_unusable_connection_is_closed_not_returned() {
    let (server, pool) = setup().await;
    let mut conn = pool.get().await.unwrap();
    roundtrip(&mut conn).await.unwrap();
    conn.mark_unusable();
    drop(conn);
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(pool.stats().idle(), 0);
    let closed = eventually(Duration::from_secs(1), || server.ended.load(SeqCst) == 1).await;
    assert!(closed.is_some(), "the server never saw the close");
    // The slot is free: a new connection.
    let mut conn = pool.get().await.unwrap();
    roundtrip(&mut conn).await.unwrap();
    assert_eq!(server.accepted.load(SeqCst), 2);
}

#[tokio::test]
async fn a_waiter_gets_the_slot_an_unusable_connection_frees() {
    let (server, pool) = setup().await;
    let mut conn = pool.get().await.unwrap();
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut conn = pool.get().await.unwrap();
            roundtrip(&mut conn).await
        }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    conn.mark_unusable();
    drop(conn);
    waiter.await.unwrap().unwrap();
    assert_eq!(server.accepted.load(SeqCst), 2);
    assert_eq!(pool.stats().size(), 1);
}

#[tokio::test]
async fn a_detached_connection_leaves_the_pool_and_stays_open() {
    let (server, pool) = setup().await;
    let conn: Pooled<TcpManager> = pool.get().await.unwrap();
    let mut stream = conn.detach();
    assert_eq!(pool.stats().size(), 0);
    // The pool (max_size 1) can open another while the detached one lives on.
    let mut pooled = pool.get().await.unwrap();
    roundtrip(&mut pooled).await.unwrap();
    roundtrip(&mut stream).await.unwrap();
    assert_eq!(server.accepted.load(SeqCst), 2);
    drop(pooled);
    assert_eq!(pool.stats().idle(), 1);
    // Dropping the detached stream is the caller's business: the pool never sees it.
    drop(stream);
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(pool.stats().size(), 1);
}

#[tokio::test]
async fn a_closed_connection_is_replaced_at_once_to_keep_min_idle() {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(2)
        .evict_interval(Duration::from_secs(3600)) // not the evictor's doing
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    conn.mark_unusable();
    drop(conn);
    let topped_up = eventually(Duration::from_secs(1), || pool.stats().idle() == 2).await;
    assert!(topped_up.is_some(), "{:?}", pool.stats());
    assert_eq!(server.accepted.load(SeqCst), 3);
}
