//! Beyond connpool: when the peer closes an idle connection, the pool drops it within
//! 100 ms without a `get`, whatever the evict interval, and replaces it to keep
//! `min_idle`. It learns of the close from the runtime's readiness events.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use pool_support::{eventually, Echo, Fakes};

const BOUND: Duration = Duration::from_millis(100);

#[tokio::test]
async fn a_peer_close_on_an_idle_connection_is_noticed_within_100ms() {
    let server = Echo::start_with(None, true).await;
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(3)
        .evict_interval(Duration::from_secs(3600))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    assert_eq!(pool.stats().idle(), 3);
    // Long idle, so the watcher has registered them all.
    tokio::time::sleep(Duration::from_millis(80)).await;

    for closed in 1..=2u64 {
        let victim = server.held.lock().unwrap().remove(0);
        drop(victim); // FIN to the pool's idle connection
        let took = eventually(Duration::from_secs(2), || {
            pool.stats().peer_closed() == closed
        })
        .await;
        let took = took.expect("the close was never noticed");
        assert!(took <= BOUND, "noticed after {took:?}");
        // Replaced: min_idle holds again, with a new connection.
        let replaced = eventually(Duration::from_secs(2), || {
            pool.stats().idle() == 3 && server.accepted.load(SeqCst) == 3 + closed as usize
        })
        .await;
        assert!(replaced.is_some(), "not replaced: {:?}", pool.stats());
        tokio::time::sleep(Duration::from_millis(60)).await;
    }
    assert_eq!(pool.stats().requests(), 0, "no get was needed");
}

#[tokio::test]
async fn a_connection_closed_just_after_its_return_is_noticed_too() {
    let server = Echo::start_with(None, true).await;
    let pool = Pool::builder()
        .max_size(2)
        .evict_interval(Duration::from_secs(3600))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    drop(conn); // idle for 0 ms: not yet registered with the watcher
    eventually(Duration::from_secs(1), || {
        server.held.lock().unwrap().len() == 1
    })
    .await;
    let victim = server.held.lock().unwrap().remove(0);
    drop(victim);
    let took = eventually(Duration::from_secs(2), || pool.stats().peer_closed() == 1).await;
    let took = took.expect("the close was never noticed");
    assert!(took <= BOUND, "noticed after {took:?}");
    assert_eq!(pool.stats().size(), 0); // below min_idle (0): not replaced
}

#[tokio::test]
async fn an_idle_connection_with_unread_bytes_is_kept_until_its_peer_closes() {
    use tokio::io::AsyncWriteExt;
    let server = Echo::start_with(None, true).await;
    let pool = Pool::builder()
        .min_idle(1)
        .evict_interval(Duration::from_secs(3600))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    eventually(Duration::from_secs(1), || {
        server.held.lock().unwrap().len() == 1
    })
    .await;
    let mut victim = server.held.lock().unwrap().remove(0);
    // Unsolicited bytes wake the watcher, but the connection is open: kept.
    victim.write_all(b"hello").await.unwrap();
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(pool.stats().peer_closed(), 0);
    assert_eq!(pool.stats().idle(), 1);
    // Then the close behind those bytes: noticed where the check sees a FIN behind
    // unread bytes.
    drop(victim);
    let took = eventually(Duration::from_secs(2), || pool.stats().peer_closed() == 1).await;
    if sees_fin_behind_data() {
        assert!(took.is_some_and(|t| t <= BOUND), "{took:?}");
    } else {
        // Until the bytes are read, the check says Readable: the connection stays idle
        // and is found closed when it is next checked out and used.
        assert_eq!(took, None, "the close was seen behind the bytes");
        assert_eq!(pool.stats().idle(), 1);
    }
}

#[tokio::test]
async fn the_background_task_does_not_keep_a_dropped_pool_alive() {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .min_idle(2)
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(pool);
    // Dropping the last handle closes the idle connections: the server sees both end.
    let ended = eventually(Duration::from_secs(2), || server.ended.load(SeqCst) == 2).await;
    assert!(ended.is_some(), "the pool outlived its last handle");
}

#[tokio::test]
async fn a_pool_with_every_idle_connection_watched_sets_no_timer_for_them() {
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(2)
        .evict_interval(Duration::from_secs(3600))
        .build(fakes.clone())
        .await
        .unwrap();
    let registered = eventually(Duration::from_secs(1), || {
        fakes.closed_polls.load(SeqCst) >= 2
    })
    .await;
    assert!(
        registered.is_some(),
        "the idle connections were never watched"
    );
    // Both are registered with the runtime now: nothing is left for a timer to do,
    // and no readiness event comes, so the watcher sleeps.
    let before = fakes.closed_polls.load(SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let polls = fakes.closed_polls.load(SeqCst) - before;
    assert!(
        polls <= 2,
        "{polls} polls of quiet idle connections in 500 ms"
    );

    // A return wakes it again: the returned connection is registered in its turn.
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    drop((a, b));
    let before = fakes.closed_polls.load(SeqCst);
    let again = eventually(Duration::from_secs(1), || {
        fakes.closed_polls.load(SeqCst) >= before + 2
    })
    .await;
    assert!(again.is_some(), "returned connections were not watched");
}

/// Whether `check` sees a FIN behind unread bytes. Linux does (`POLLRDHUP`); the portable
/// Unix path does not (a peek sees the bytes). Windows documents `POLLHUP` from `WSAPoll`
/// once the stream is disconnected, and the check reads it as the end of the stream; Wine
/// 8.0 reports only the bytes (`POLLRDNORM`).
fn sees_fin_behind_data() -> bool {
    #[cfg(windows)]
    return !connhealth_testkit::is_wine();
    #[cfg(not(windows))]
    cfg!(all(target_os = "linux", not(connhealth_portable)))
}
