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

#[tokio::test]
async fn queued_gets_each_time_out_on_their_own_deadline() {
    // Waiting gets arm no timer of their own: the pool's background task keeps one, for
    // the oldest waiter. It must serve every deadline, whatever else is configured.
    let fakes = Fakes::default();
    let pool = Pool::builder()
        .max_size(1)
        .get_timeout(Duration::from_millis(100))
        .watch_idle(false)
        .evict_interval(Duration::from_secs(3600))
        .build(fakes.clone())
        .await
        .unwrap();
    let held = pool.get().await.unwrap();
    let mut waiters = Vec::new();
    for _ in 0..4 {
        let pool = pool.clone();
        waiters.push(tokio::spawn(async move {
            let start = Instant::now();
            let result = pool.get().await.map(drop);
            (result, start.elapsed())
        }));
        tokio::time::sleep(Duration::from_millis(30)).await; // staggered deadlines
    }
    for waiter in waiters {
        let (result, took) = waiter.await.unwrap();
        assert!(matches!(result, Err(PoolError::Timeout)));
        assert!(
            took >= Duration::from_millis(95) && took < Duration::from_millis(600),
            "{took:?}"
        );
    }
    assert_eq!(pool.stats().timeouts(), 4);
    drop(held);
    assert!(
        pool.get().await.is_ok(),
        "the timed-out waiters left no trace"
    );
    assert_eq!(pool.stats().size(), 1);
}

#[tokio::test]
async fn a_wait_and_the_connect_after_it_share_one_timeout() {
    // 100 ms into its wait, the waiter is handed either a slot (the held connection is
    // closed) or a connection that fails its check; either way it must connect, and the
    // connect stalls. It gives up at get_timeout from the start of the get, not a whole
    // get_timeout after the hand-off.
    for handed_a_dead_connection in [false, true] {
        let fakes = Fakes::default();
        let pool = Pool::builder()
            .max_size(1)
            .get_timeout(Duration::from_millis(250))
            .build(fakes.clone())
            .await
            .unwrap();
        let mut held = pool.get().await.unwrap();
        let waiter = tokio::spawn({
            let pool = pool.clone();
            async move {
                let start = Instant::now();
                let result = pool.get().await.map(drop);
                (result, start.elapsed())
            }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        fakes.delay_ms.store(5000, SeqCst);
        if handed_a_dead_connection {
            fakes.mark_dead(held.id);
        } else {
            held.mark_unusable();
        }
        drop(held);
        let (result, took) = waiter.await.unwrap();
        assert!(matches!(result, Err(PoolError::Timeout)), "{result:?}");
        assert!(
            took >= Duration::from_millis(245) && took < Duration::from_millis(330),
            "handed a dead connection: {handed_a_dead_connection}, {took:?}"
        );
        assert_eq!(pool.stats().size(), 0, "the stalled connect freed its slot");
    }
}

#[tokio::test]
async fn a_refused_connect_says_where_it_went() {
    use connhealth::pool::TcpManager;
    // A loopback port with no listener: refused at once.
    let port = connhealth_testkit::free_port().unwrap();
    let pool = Pool::builder()
        .build(TcpManager::new(format!("127.0.0.1:{port}")))
        .await
        .unwrap();
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Connect(_)), "{err}");
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains(&format!("127.0.0.1:{port}")), "{source}");
    assert_eq!(pool.stats().connect_errors(), 1);
    assert_eq!(pool.stats().size(), 0);
}
