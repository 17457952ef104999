//! `ss -K` kills every idle connection (the kernel aborts them: `ECONNABORTED` on one
//! side, a reset on the other); load then resumes with no error.
#![cfg(target_os = "linux")] // needs `ss -K`, in a network namespace

mod pool_support;

use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use pool_support::{eventually, roundtrip, Echo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_resumes_without_errors_after_ss_kills_every_idle_connection() {
    if !connhealth_testkit::require("killing sockets with ss -K", &["ss"]) {
        return;
    }
    let server = Echo::start(None).await;
    let pool = Pool::builder()
        .max_size(6)
        .min_idle(6)
        .evict_interval(Duration::from_secs(3600))
        .build(TcpManager::new(server.addr.clone()))
        .await
        .unwrap();
    let before = pool.stats();
    assert_eq!(before.idle(), 6);

    // The port is the test's own loopback listener: only its connections are killed.
    connhealth_testkit::kill_tcp_port(server.port).expect("ss -K");

    // Load at once, racing the watcher: the checkout check catches what it has not.
    let tasks: Vec<_> = (0..48)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.map_err(std::io::Error::other)?;
                roundtrip(&mut conn).await
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        if let Err(err) = task.await.unwrap() {
            eprintln!("request failed: {err}");
            failed += 1;
        }
    }
    let stats = pool.stats();
    assert_eq!(failed, 0, "{stats:?}");
    assert_eq!(
        stats.peer_closed() + stats.check_failed(),
        6,
        "every killed connection was dropped, none handed out: {stats:?}"
    );
    // And min_idle is restored.
    let restored = eventually(Duration::from_secs(2), || pool.stats().idle() == 6).await;
    assert!(restored.is_some(), "{:?}", pool.stats());
}
