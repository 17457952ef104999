//! A TCP echo client through the pool (connpool's tcp-echo, in Rust).
//!
//!     cargo run -p connhealth --example tcp-echo [HOST:PORT]
//!
//! Without an address it starts its own echo server on loopback, which also closes
//! connections idle for 200 ms: the pool drops those before anyone gets one.

use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let addr = match std::env::args().nth(1) {
        Some(addr) => addr,
        None => echo_server().await?,
    };
    let pool = Pool::builder()
        .max_size(4)
        .min_idle(2)
        .get_timeout(Duration::from_secs(2))
        .build(TcpManager::new(addr.clone()).nodelay(true))
        .await?;

    for round in 0..3 {
        let clients: Vec<_> = (0..8)
            .map(|i| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let mut conn = pool.get().await?;
                    let msg = format!("hello {i}");
                    conn.write_all(msg.as_bytes()).await?;
                    let mut reply = vec![0; msg.len()];
                    conn.read_exact(&mut reply).await?;
                    assert_eq!(reply, msg.as_bytes());
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
                })
            })
            .collect();
        for client in clients {
            client.await??;
        }
        let stats = pool.stats();
        println!(
            "round {round}: 8 echoes via {addr} on {} pooled connections; closed by the server \
             and dropped unused so far: {}",
            stats.size(),
            stats.peer_closed() + stats.check_failed()
        );
        tokio::time::sleep(Duration::from_millis(300)).await; // past the server's idle cut
    }
    pool.close().await;
    Ok(())
}

async fn echo_server() -> std::io::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let idle_cut = Duration::from_millis(200);
                while let Ok(Ok(n @ 1..)) =
                    tokio::time::timeout(idle_cut, stream.read(&mut buf)).await
                {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(addr)
}
