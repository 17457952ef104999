//! A round-robin load balancer over several pools, one per backend (connpool's
//! load-balancer, in Rust).
//!
//!     cargo run -p connhealth --example load-balancer [HOST:PORT ...]
//!
//! Without addresses it starts three loopback backends that answer with their name, and
//! stops one halfway: its pooled connections close, the pool notices, and the balancer
//! skips the backend without a failed request.

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use connhealth::pool::{Pool, PoolError, Pooled, TcpManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Balancer {
    pools: Vec<Pool<TcpManager>>,
    next: AtomicUsize,
}

impl Balancer {
    /// The next backend in turn that can give a connection.
    async fn get(&self) -> Result<Pooled<TcpManager>, PoolError<std::io::Error>> {
        let mut last = PoolError::Closed;
        for _ in 0..self.pools.len() {
            let i = self.next.fetch_add(1, Relaxed) % self.pools.len();
            match self.pools[i].get().await {
                Ok(conn) => return Ok(conn),
                Err(err) => last = err, // down: try the next one
            }
        }
        Err(last)
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut addrs: Vec<String> = std::env::args().skip(1).collect();
    let mut stoppers = Vec::new();
    if addrs.is_empty() {
        for name in ["a", "b", "c"] {
            let (addr, stop) = backend(name).await?;
            addrs.push(addr);
            stoppers.push(stop);
        }
    }
    let mut pools = Vec::new();
    for addr in &addrs {
        let manager = TcpManager::new(addr.clone()).connect_timeout(Duration::from_millis(500));
        pools.push(
            Pool::builder()
                .max_size(2)
                .min_idle(1)
                .build(manager)
                .await?,
        );
    }
    let balancer = Balancer {
        pools,
        next: AtomicUsize::new(0),
    };

    for round in 0..2 {
        let mut answers = Vec::new();
        for _ in 0..9 {
            let mut conn = balancer.get().await?;
            conn.write_all(b"?").await?;
            let mut name = [0u8; 1];
            conn.read_exact(&mut name).await?;
            answers.push(name[0] as char);
        }
        println!(
            "round {round}: 9 requests answered by {}",
            answers.iter().collect::<String>()
        );
        if round == 0 && !stoppers.is_empty() {
            stoppers.remove(1).send(()).ok(); // backend "b" goes away
            tokio::time::sleep(Duration::from_millis(100)).await;
            println!(
                "backend b stopped: its pool dropped {} dead connection(s)",
                balancer.pools[1].stats().peer_closed()
            );
        }
    }
    Ok(())
}

/// A backend answering each byte with its name, until told to stop (then it closes its
/// listener and every connection).
async fn backend(
    name: &'static str,
) -> std::io::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut stopped => return, // dropping the set closes every connection
                accepted = listener.accept() => {
                    let Ok((mut stream, _)) = accepted else { return };
                    conns.spawn(async move {
                        let mut byte = [0u8; 1];
                        while let Ok(1) = stream.read(&mut byte).await {
                            if stream.write_all(name.as_bytes()).await.is_err() {
                                break;
                            }
                        }
                    });
                }
            }
        }
    });
    Ok((addr, stop))
}
