//! Demo part: a server that drops idle connections, requests through `connhealth::pool`
//! with zero failures, beside a pool without checks that hands out dead connections.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use connhealth::pool::{Pool, TcpManager};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The server closes a connection idle this long, as Redis `timeout` or a load
/// balancer's idle cut would.
const IDLE_CUT: Duration = Duration::from_millis(100);
const ROUNDS: usize = 12;
const BURST: usize = 4;

pub(crate) fn run() -> io::Result<()> {
    super::heading("pool: a server that drops idle connections");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (addr, accepted) = idle_cutting_server().await?;
        println!(
            "an echo server on {addr} closes connections idle for {} ms; {ROUNDS} rounds of {BURST} \
             requests, some rounds after a pause longer than that\n",
            IDLE_CUT.as_millis()
        );

        let pool = Pool::builder()
            .max_size(BURST)
            .build(TcpManager::new(addr.clone()))
            .await?;
        let before = accepted.load(Relaxed);
        let failed = rounds(|| {
            let pool = pool.clone();
            async move {
                let mut conn = pool.get().await.map_err(io::Error::other)?;
                request(&mut conn).await
            }
        })
        .await;
        let stats = pool.stats();
        println!(
            "  {:<24} {} requests, {failed:>2} failed   {} connections opened; {} closed by the server \
             were dropped before use ({} by the idle watcher, {} by the checkout check)",
            "connhealth::pool",
            ROUNDS * BURST,
            accepted.load(Relaxed) - before,
            stats.peer_closed() + stats.check_failed(),
            stats.peer_closed(),
            stats.check_failed(),
        );

        let naive = Arc::new(Naive {
            addr,
            idle: Mutex::default(),
        });
        let before = accepted.load(Relaxed);
        let naive_failed = rounds(|| {
            let naive = naive.clone();
            async move {
                let mut conn = naive.get().await?;
                request(&mut conn).await?;
                naive.put(conn);
                Ok(())
            }
        })
        .await;
        println!(
            "  {:<24} {} requests, {naive_failed:>2} failed   {} connections opened; each failure was a \
             connection the server had closed",
            "a pool without checks",
            ROUNDS * BURST,
            accepted.load(Relaxed) - before,
        );
        if failed != 0 {
            return Err(io::Error::other(format!("{failed} requests failed through the pool")));
        }
        Ok(())
    })
}

/// Runs the rounds; returns how many requests failed.
async fn rounds<F, Fut>(mut one: F) -> usize
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = io::Result<()>> + Send + 'static,
{
    let mut failed = 0;
    for round in 0..ROUNDS {
        let burst: Vec<_> = (0..BURST).map(|_| tokio::spawn(one())).collect();
        for request in burst {
            if !matches!(request.await, Ok(Ok(()))) {
                failed += 1;
            }
        }
        // Every third pause outlasts the server's idle cut.
        let pause = if round % 3 == 1 {
            IDLE_CUT + IDLE_CUT / 2
        } else {
            Duration::from_millis(5)
        };
        tokio::time::sleep(pause).await;
    }
    failed
}

async fn request(conn: &mut TcpStream) -> io::Result<()> {
    conn.write_all(b"ping").await?;
    let mut reply = [0u8; 4];
    conn.read_exact(&mut reply).await?; // EOF here: the server had closed it
    Ok(())
}

/// A pool as many are written: a list of connections, no check.
struct Naive {
    addr: String,
    idle: Mutex<Vec<TcpStream>>,
}

impl Naive {
    async fn get(&self) -> io::Result<TcpStream> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => TcpStream::connect(&self.addr).await,
        }
    }

    fn put(&self, conn: TcpStream) {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(conn);
    }
}

async fn idle_cutting_server() -> io::Result<(String, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                while let Ok(Ok(n @ 1..)) =
                    tokio::time::timeout(IDLE_CUT, stream.read(&mut buf)).await
                {
                    if stream.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // Idle too long (or the client left): drop, a FIN.
            });
        }
    });
    Ok((addr, accepted))
}
