//! A Redis proxy that forwards PINGs through the pool (connpool's redis-proxy, in Rust).
//!
//!     cargo run -p connhealth --example redis-proxy [REDIS_HOST:PORT]
//!
//! Without an address it starts `redis-server --timeout 1` on a free loopback port (and
//! installs the Debian package if it is missing and we are root). Clients talk to the
//! proxy; the proxy's pooled connections to Redis sit idle past Redis's one-second cut,
//! and every PING still succeeds.
//!
//! Starting its own redis-server needs Unix (testkit's `Redis`); elsewhere give it an
//! address.

use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The redis-server the proxy starts when it is given no address.
#[cfg(unix)]
type OwnRedis = connhealth_testkit::Redis;
#[cfg(not(unix))]
type OwnRedis = std::convert::Infallible;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (redis_addr, _redis): (String, Option<OwnRedis>) = match std::env::args().nth(1) {
        Some(addr) => (addr, None),
        #[cfg(unix)]
        None => {
            let redis = connhealth_testkit::Redis::start(&["--timeout", "1"])?;
            (redis.addr().to_string(), Some(redis))
        }
        #[cfg(not(unix))]
        None => {
            println!(
                "without an address this example starts a local redis-server, which needs \
                 Unix; give it the address of a redis-server instead"
            );
            return Ok(());
        }
    };
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(2)
        .build(TcpManager::new(redis_addr.clone()))
        .await?;

    // The proxy: one line in from a client, the same line to Redis through the pool,
    // Redis's one-line reply back.
    let proxy = TcpListener::bind("127.0.0.1:0").await?;
    let proxy_addr = proxy.local_addr()?;
    tokio::spawn({
        let pool = pool.clone();
        async move {
            while let Ok((client, _)) = proxy.accept().await {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let (read, mut write) = client.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let reply = match forward(&pool, &line).await {
                            Ok(reply) => reply,
                            Err(err) => format!("-ERR proxy: {err}\r\n"),
                        };
                        if write.write_all(reply.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    });

    let client = TcpStream::connect(proxy_addr).await?;
    let (read, mut write) = client.into_split();
    let mut replies = BufReader::new(read).lines();
    for round in 0..2 {
        for _ in 0..4 {
            write.write_all(b"PING\r\n").await?;
            let reply = replies.next_line().await?.unwrap_or_default();
            assert_eq!(reply, "+PONG", "a PING failed");
        }
        let stats = pool.stats();
        println!(
            "round {round}: 4 PINGs via proxy {proxy_addr} to redis {redis_addr}: all +PONG \
             (dead pooled connections dropped so far: {})",
            stats.peer_closed() + stats.check_failed()
        );
        if round == 0 {
            println!("waiting 2.5 s: redis closes connections idle for 1 s");
            tokio::time::sleep(Duration::from_millis(2500)).await;
        }
    }
    Ok(())
}

async fn forward(pool: &Pool<TcpManager>, line: &str) -> Result<String, Error> {
    let mut conn = pool.get().await?;
    conn.write_all(format!("{line}\r\n").as_bytes()).await?;
    let mut reply = String::new();
    let read = BufReader::new(&mut *conn).read_line(&mut reply).await;
    if read.is_err() || !reply.ends_with("\r\n") {
        conn.mark_unusable(); // the protocol state is unknown now
        return Err("redis closed the connection mid-reply".into());
    }
    Ok(reply)
}
