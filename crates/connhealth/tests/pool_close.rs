//! `close()`: waiters get `Closed`, later gets too (no `get` succeeds once it returned,
//! even one a connection was already on its way to), idle connections close at once,
//! connections returned afterwards are closed, and a second close is harmless. The
//! shutdown of the pool's runtime closes it too.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, PoolError, TcpManager};
use pool_support::{eventually, Echo, Fakes};

#[tokio::test]
async fn close_fails_waiters_and_closes_every_connection() {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .max_size(2)
        .min_idle(2)
        .get_timeout(Duration::from_secs(5))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    // The pool is exhausted: this get queues.
    let queued = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(pool.stats().wait_count(), 1);

    pool.close().await;
    assert!(pool.is_closed());
    let queued = tokio::time::timeout(Duration::from_secs(1), queued)
        .await
        .expect("waiter left hanging");
    assert!(matches!(queued.unwrap(), Err(PoolError::Closed)));
    // The wait the close ended counts, to within the coarse clock's tick (4 ms at most).
    let waited = pool.stats().wait_time();
    assert!(waited >= Duration::from_millis(6), "{waited:?}");
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));

    // Returned after the close: closed, not kept.
    drop(a);
    drop(b);
    assert_eq!(pool.stats().size(), 0);
    assert_eq!(pool.stats().idle(), 0);
    let ended = eventually(Duration::from_secs(1), || server.ended.load(SeqCst) == 2).await;
    assert!(
        ended.is_some(),
        "the server saw {} closes",
        server.ended.load(SeqCst)
    );

    // Twice is harmless.
    pool.close().await;
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert_eq!(
        PoolError::<std::io::Error>::Closed.to_string(),
        "the pool is closed"
    );
}

#[tokio::test]
async fn no_get_pending_at_the_close_succeeds() {
    let fakes = Fakes::default();
    let pool = fakes.pool(1).await;
    let held = pool.get().await.unwrap();
    // A waiter, queued and then left unpolled, is handed the connection just before the
    // close, and runs after it.
    let mut waiter = Box::pin(pool.get());
    assert!(tokio::time::timeout(Duration::from_millis(10), &mut waiter)
        .await
        .is_err());
    drop(held);
    // And a connect in flight at the close.
    let connecting_pool = fakes.pool(1).await;
    fakes.delay_ms.store(50, SeqCst);
    let connecting = tokio::spawn({
        let pool = connecting_pool.clone();
        async move { pool.get().await.map(drop) }
    });
    tokio::time::sleep(Duration::from_millis(10)).await;

    pool.close().await;
    connecting_pool.close().await;
    assert!(matches!(waiter.await, Err(PoolError::Closed)));
    assert!(matches!(connecting.await.unwrap(), Err(PoolError::Closed)));
    for closed in [&pool, &connecting_pool] {
        let stats = closed.stats();
        assert_eq!(stats.size(), 0, "{stats:?}");
        assert_eq!(stats.successes(), stats.requests() - 1, "{stats:?}");
    }
    assert_eq!(
        fakes.open.load(SeqCst),
        0,
        "a connection outlived its pool's close"
    );
}

#[tokio::test]
async fn close_closes_idle_connections_at_once() {
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .min_idle(3)
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    assert_eq!(pool.stats().idle(), 3);
    pool.close().await;
    assert_eq!(pool.stats().size(), 0);
    let ended = eventually(Duration::from_secs(1), || server.ended.load(SeqCst) == 3).await;
    assert!(ended.is_some());
    // The background task does not reopen min_idle on a closed pool.
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(server.accepted.load(SeqCst), 3);
}

#[tokio::test]
async fn the_background_task_exits_when_the_pool_is_closed_or_dropped() {
    let tasks = || {
        tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks()
    };
    for close_first in [false, true] {
        let before = tasks();
        let pool = Pool::builder()
            .min_idle(1)
            .watch_idle(false) // no 20 ms tick: only a wake-up ends the task promptly
            .evict_interval(Duration::from_secs(3600))
            .build(pool_support::Fakes::default())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(tasks(), before + 1, "one background task per pool");
        if close_first {
            pool.close().await;
        } else {
            drop(pool.clone()); // a clone going away changes nothing
            tokio::time::sleep(Duration::from_millis(10)).await;
            assert_eq!(tasks(), before + 1);
        }
        drop(pool);
        let gone = eventually(Duration::from_millis(500), || tasks() == before).await;
        assert!(
            gone.is_some(),
            "the background task lives on (closed first: {close_first})"
        );
    }
}

/// A pool that outlives the runtime it was built on (a static pool shared by tests that
/// each run their own runtime) has lost its background task, and with it the timer that
/// ends a wait: it is closed, and says so, rather than leave a get waiting for ever.
#[test]
fn a_pool_whose_runtime_shut_down_is_closed() {
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    let fakes = Fakes::default();
    let first = runtime();
    let pool = first
        .block_on(
            Pool::builder()
                .max_size(1)
                .get_timeout(Duration::from_millis(100))
                .build(fakes.clone()),
        )
        .unwrap();
    let held = first.block_on(pool.get()).unwrap();
    drop(first);

    runtime().block_on(async {
        let got = tokio::time::timeout(Duration::from_secs(2), pool.get()).await;
        assert!(
            matches!(got, Ok(Err(PoolError::Closed))),
            "{:?}",
            got.map(|r| r.map(drop))
        );
    });
    drop(held); // returned after the close: closed, not kept
    assert_eq!(fakes.open.load(SeqCst), 0);
    assert_eq!(pool.stats().size(), 0);
}
