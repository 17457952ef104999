//! Shared by the pool's tests: loopback servers and a manager of no-op connections.
#![allow(dead_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use connhealth::pool::Manager;
use connhealth::Status;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback echo server. It closes a connection that stays idle for `idle_cut`, as
/// Redis `timeout` or a load balancer would.
#[derive(Debug, Clone)]
pub struct Echo {
    pub addr: String,
    pub port: u16,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicUsize>,
    /// Connections that ended (EOF or error seen by the server, or cut for idleness).
    pub ended: Arc<AtomicUsize>,
    /// Server-side streams kept by `hold`, to be closed by the test.
    pub held: Arc<Mutex<Vec<TcpStream>>>,
}

impl Echo {
    pub async fn start(idle_cut: Option<Duration>) -> Echo {
        Self::start_with(idle_cut, false).await
    }

    /// With `hold`, the server echoes nothing and keeps each accepted stream in `held`.
    pub async fn start_with(idle_cut: Option<Duration>, hold: bool) -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let echo = Echo {
            addr: format!("127.0.0.1:{port}"),
            port,
            accepted: Arc::default(),
            ended: Arc::default(),
            held: Arc::default(),
        };
        let server = echo.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                server.accepted.fetch_add(1, SeqCst);
                if hold {
                    server.held.lock().unwrap().push(stream);
                    continue;
                }
                let ended = server.ended.clone();
                tokio::spawn(async move {
                    serve(stream, idle_cut).await;
                    ended.fetch_add(1, SeqCst);
                });
            }
        });
        echo
    }
}

async fn serve(mut stream: TcpStream, idle_cut: Option<Duration>) {
    let mut buf = [0u8; 1024];
    loop {
        let read = stream.read(&mut buf);
        let n = match idle_cut {
            Some(cut) => match tokio::time::timeout(cut, read).await {
                Ok(n) => n,
                Err(_) => return, // idle too long: close (FIN)
            },
            None => read.await,
        };
        match n {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One request on an echo connection.
pub async fn roundtrip(conn: &mut TcpStream) -> io::Result<()> {
    conn.write_all(b"ping").await?;
    let mut reply = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(2), conn.read_exact(&mut reply))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no echo"))??;
    assert_eq!(&reply, b"ping");
    Ok(())
}

/// A connection that costs nothing, numbered, and counted while alive.
#[derive(Debug)]
pub struct Fake {
    pub id: usize,
    open: Arc<AtomicUsize>,
    panic_on_drop: Arc<AtomicBool>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.open.fetch_sub(1, SeqCst);
        if self.panic_on_drop.swap(false, SeqCst) && !std::thread::panicking() {
            panic!("a connection's Drop panicked (expected by the test)");
        }
    }
}

/// A manager of [`Fake`] connections that counts connections alive plus connects in
/// flight, and records the peak.
#[derive(Debug, Default, Clone)]
pub struct Fakes {
    pub open: Arc<AtomicUsize>,
    pub peak: Arc<AtomicUsize>,
    pub made: Arc<AtomicUsize>,
    /// Connects fail while set.
    pub failing: Arc<AtomicBool>,
    /// The next this-many connects fail.
    pub fail_next: Arc<AtomicUsize>,
    /// Connects take this long (milliseconds).
    pub delay_ms: Arc<AtomicUsize>,
    /// Connects fail or stall at random (seeded per connect number).
    pub chaos: Arc<AtomicBool>,
    /// `check` panics while set.
    pub panic_on_check: Arc<AtomicBool>,
    /// The next connection dropped panics in its `Drop`.
    pub panic_on_drop: Arc<AtomicBool>,
    /// `ping` fails while set.
    pub ping_fails: Arc<AtomicBool>,
    /// Pings sent.
    pub pings: Arc<AtomicUsize>,
    /// Ids that `check` reports closed.
    pub dead: Arc<Mutex<Vec<usize>>>,
    /// Calls of `poll_closed`, which reports every connection open.
    pub closed_polls: Arc<AtomicUsize>,
}

impl Fakes {
    /// A pool of at most `max_size` of these, with the defaults otherwise.
    pub async fn pool(&self, max_size: usize) -> connhealth::pool::Pool<Fakes> {
        connhealth::pool::Pool::builder()
            .max_size(max_size)
            .build(self.clone())
            .await
            .unwrap()
    }
}

/// Holds a count while a connect is in flight; a cancelled connect drops it.
struct InFlight(Arc<AtomicUsize>);
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

impl Manager for Fakes {
    type Connection = Fake;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<Fake> {
        let now = self.open.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        let flight = InFlight(self.open.clone());
        let id = self.made.fetch_add(1, SeqCst);
        let delay = self.delay_ms.load(SeqCst) as u64;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.chaos.load(SeqCst) {
            // A cheap hash of the connect number: a third fail, a sixth stall.
            let h = (id as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60;
            if h < 5 {
                return Err(io::Error::other("chaos: refused"));
            }
            if h < 8 {
                tokio::time::sleep(Duration::from_millis(30 + h * 10)).await;
            }
            if h == 8 {
                tokio::time::sleep(Duration::from_secs(5)).await; // stalls past get_timeout
            }
        }
        let fail_next = self
            .fail_next
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1));
        if self.failing.load(SeqCst) || fail_next.is_ok() {
            return Err(io::Error::other("connect refused (test)"));
        }
        std::mem::forget(flight); // the count now belongs to the connection
        Ok(Fake {
            id,
            open: self.open.clone(),
            panic_on_drop: self.panic_on_drop.clone(),
        })
    }

    fn check(&self, conn: &Fake) -> Status {
        if self.panic_on_check.load(SeqCst) {
            panic!("check panicked (test)");
        }
        if self.dead.lock().unwrap().contains(&conn.id) {
            Status::Closed(connhealth::Closed::Eof)
        } else {
            Status::Open
        }
    }

    fn poll_closed(&self, _conn: &mut Fake, _cx: &mut Context<'_>) -> Poll<()> {
        self.closed_polls.fetch_add(1, SeqCst);
        Poll::Pending
    }

    async fn ping(&self, _conn: &mut Fake) -> io::Result<()> {
        self.pings.fetch_add(1, SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        if self.ping_fails.load(SeqCst) {
            Err(io::Error::other("ping failed (test)"))
        } else {
            Ok(())
        }
    }
}

impl Fakes {
    pub fn mark_dead(&self, id: usize) {
        self.dead.lock().unwrap().push(id);
    }
}

/// Polls `cond` every 2 ms (yielding to the runtime) until it holds or `limit` passes.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = tokio::time::Instant::now();
    loop {
        if cond() {
            return Some(start.elapsed());
        }
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
