//! A server that closes connections idle for 50 ms: the pool never hands one of them out,
//! and still reuses the live ones. Once with only the checkout check (the idle watcher
//! off), once with everything on.

mod pool_support;

use std::sync::atomic::Ordering::SeqCst;
use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use pool_support::{roundtrip, Echo};

async fn no_stale_connection_is_handed_out(watch_idle: bool) {
    let server = Echo::start(Some(Duration::from_millis(50))).await;
    let pool = Pool::builder()
        .max_size(4)
        .watch_idle(watch_idle)
        .evict_interval(Duration::from_secs(3600)) // the evictor plays no part
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();

    let mut failures = 0;
    let rounds = 40;
    for round in 0..rounds {
        // Bursts of 3 concurrent requests; between bursts, either a short pause (the
        // server keeps the connections) or a long one (the server has closed them all).
        // Never near 50 ms, where the server's cut races the request itself.
        let burst: Vec<_> = (0..3)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut conn = pool.get().await.unwrap();
                    roundtrip(&mut conn).await
                })
            })
            .collect();
        for request in burst {
            if request.await.unwrap().is_err() {
                failures += 1;
            }
        }
        let pause = if round % 3 == 2 { 90 } else { 5 };
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let stats = pool.stats();
    assert_eq!(failures, 0, "stale connections handed out; {stats:?}");
    let accepted = server.accepted.load(SeqCst);
    assert!(
        accepted < rounds * 3 / 2,
        "live connections were not reused: {accepted} connects for {} requests",
        rounds * 3
    );
    // The pool saw the server's closes: at checkout, or (watching) before it.
    let noticed = stats.check_failed() + stats.peer_closed();
    assert!(noticed >= 10, "{stats:?}");
    if !watch_idle {
        assert_eq!(stats.peer_closed(), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_check_alone_never_hands_out_a_closed_connection() {
    no_stale_connection_is_handed_out(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_idle_watcher_no_closed_connection_is_handed_out() {
    no_stale_connection_is_handed_out(true).await;
}
