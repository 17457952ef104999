//! A real `redis-server` with `timeout 1`: it closes connections idle for a second. After
//! its idle cut, every PING through the pool succeeds.
#![cfg(target_os = "linux")] // starts a real redis-server, a Debian package

mod pool_support;

use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use connhealth_testkit::Redis;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

async fn ping(conn: &mut TcpStream) -> std::io::Result<()> {
    conn.write_all(b"PING\r\n").await?;
    let mut line = String::new();
    let mut reader = BufReader::new(&mut *conn);
    tokio::time::timeout(Duration::from_secs(2), reader.read_line(&mut line))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no reply"))??;
    if line == "+PONG\r\n" {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("reply {line:?}")))
    }
}

async fn ping_all(pool: &Pool<TcpManager>, n: usize) -> usize {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let mut conn = pool.get().await.map_err(std::io::Error::other)?;
                ping(&mut conn).await
            })
        })
        .collect();
    let mut failed = 0;
    for task in tasks {
        if let Err(err) = task.await.unwrap() {
            eprintln!("PING failed: {err}");
            failed += 1;
        }
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ping_succeeds_after_redis_cuts_idle_connections() {
    if !connhealth_testkit::require("a redis-server with timeout 1", &["redis-server"]) {
        return;
    }
    let redis = Redis::start(&["--timeout", "1"]).expect("redis-server starts");
    let pool = Pool::builder()
        .max_size(6)
        .min_idle(4)
        .evict_interval(Duration::from_secs(3600))
        .build(TcpManager::new(redis.addr().to_string()))
        .await
        .unwrap();
    assert_eq!(ping_all(&pool, 12).await, 0);
    let before = pool.stats();

    // Redis closes a connection idle for more than a second on its next cron pass.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ping_all(&pool, 24).await, 0, "{:?}", pool.stats());

    let stats = pool.stats();
    let dropped =
        stats.peer_closed() + stats.check_failed() - before.peer_closed() - before.check_failed();
    assert!(dropped >= 4, "redis's cut went unnoticed: {stats:?}");
}
