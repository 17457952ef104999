//! An async connection pool that never hands out a connection its peer has closed.
//!
//! Servers close idle connections: Redis `timeout`, MySQL `wait_timeout`, a load
//! balancer's idle cut, a restart. A pool that hands such a connection out fails the
//! next request. The usual cure, a ping on every checkout, costs a round trip and
//! server work, so people turn it off and get the errors back. This pool asks the kernel
//! instead: every checkout runs [`Manager::check`] ([`check`](crate::check) for TCP, one
//! `poll(2)`, no traffic), and an idle connection whose peer closes it is dropped within
//! milliseconds, without waiting for a `get`, from the runtime's readiness events.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use connhealth::pool::{Pool, TcpManager};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let addr = server.local_addr()?.to_string();
//! # tokio::spawn(async move { loop { let (mut s, _) = server.accept().await.unwrap();
//! #     tokio::spawn(async move { let (mut r, mut w) = s.split(); let _ = tokio::io::copy(&mut r, &mut w).await; }); } });
//! let pool = Pool::builder()
//!     .max_size(8)
//!     .min_idle(2)
//!     .get_timeout(Duration::from_secs(2))
//!     .build(TcpManager::new(addr).nodelay(true))
//!     .await?;
//!
//! let mut conn = pool.get().await?; // checked by the kernel, never closed by the peer
//! conn.write_all(b"ping").await?;
//! let mut reply = [0u8; 4];
//! conn.read_exact(&mut reply).await?;
//! assert_eq!(&reply, b"ping");
//! drop(conn); // back to the pool
//! assert_eq!(pool.stats().idle(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! # What it does, and why this way
//!
//! * **Checkout.** An idle connection (the most recently returned, so the surplus ages
//!   where the evictor finds it) is wrapped in its [`Pooled`] guard before anything can
//!   await, then judged: lifetime over, [`Manager::check`] says closed, and, only when
//!   configured with [`Builder::ping_after_idle`], a [`Manager::ping`] after a long idle
//!   time. One that fails is closed and the next is tried, or a fresh one opened with its
//!   permit.
//! * **`max_size` holds** under any contention and any failure: a permit (one of
//!   `max_size`) is taken before its connect starts, and given back (to the oldest
//!   waiter) when the connect fails, stalls into a timeout, or its future is dropped.
//! * **Waiters are served first in, first out.** A returned connection, or a freed permit,
//!   goes straight to the oldest waiter; a newcomer cannot overtake it. A dropped `get()`
//!   future passes on whatever reached it, so nothing leaks and no wake-up is lost.
//! * **Growth** opens [`Builder::grow_by`] connections at once when the pool must grow,
//!   one for the caller and the rest in the background.
//! * **Lifetimes** are drawn per connection at creation, spread ±10% by default
//!   ([`Builder::lifetime_jitter`]), so a cohort born together does not reconnect
//!   together; they are checked at checkout, on return (an always-busy connection still
//!   expires) and by the evictor.
//! * **One background task** per pool holds only a weak reference and exits when the
//!   pool is closed or dropped. It times out waiting `get`s, runs the evictor every
//!   [`Builder::evict_interval`]
//!   (idle timeout beyond `min_idle`, lifetimes), keeps `min_idle`, and watches idle
//!   connections: those idle for 20 ms are registered with the runtime through
//!   [`Manager::poll_closed`], so a FIN or RST on one wakes the task at once and the
//!   connection is dropped, whatever the evict interval. Busy connections never meet the
//!   watcher. Its 20 ms timer runs only while an idle connection waits to be
//!   registered or checkouts go on: a quiet pool is not woken until an event, and a
//!   return wakes the task only when its timer had stopped.
//! * **The fast path** (an idle connection is there) takes one uncontended
//!   `std::sync::Mutex` on checkout and one on return, reads a coarse clock, clones an
//!   `Arc`: no allocation, no timer. A return with no one waiting parks its connection
//!   in its CPU's lane, and the next checkout on that CPU takes it back there, so tasks
//!   on different cores do not meet on one lock; a checkout whose lane is empty takes
//!   a connection parked in another lane before it opens one. No lock is held across
//!   user code (but the readiness poll) nor an await, and poisoning is recovered: a
//!   panic while holding a connection closes that connection (its protocol state is
//!   unknown) and frees its permit.
//! * **The contended path** (someone waits: checkouts and returns skip the lanes and go
//!   through the queue) allocates nothing either once the queue has reached its
//!   longest: waiters live in reused places under the pool's shared lock. A waiting `get` arms no
//!   timer of its own (a tokio timer costs a third of a hand-off): the background task
//!   keeps one, for the oldest waiter, whose deadline is always the earliest. Connects
//!   and pings inside a `get` are bounded by an ordinary timer.
//!
//! Defaults, chosen so that `Pool::builder().build(manager)` suits most users (bb8's,
//! where it has one): `max_size` 10, `min_idle` 0, `grow_by` 1, `idle_timeout` 10 min,
//! `max_lifetime` 30 min with 10% jitter, `get_timeout` 30 s, `evict_interval` 30 s, no
//! ping, idle watching on.

use crate::sync::Arc;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::Status;

mod inner;
mod stats;
mod tcp;

use self::inner::{Config, ConnectPermit, Inner, Live, Maintenance};
pub use self::stats::Stats;
pub use self::tcp::TcpManager;

/// How the pool opens, checks and (optionally) pings connections.
///
/// `check` must be cheap, synchronous and send nothing: it runs on every checkout. For a
/// socket, return [`check(conn)`](crate::check) on its descriptor.
///
/// ```
/// # #[cfg(unix)] mod unix_only { // Unix-domain sockets
/// use std::io;
/// use connhealth::{pool::Manager, Status};
/// use tokio::net::UnixStream;
///
/// struct Local(std::path::PathBuf);
///
/// impl Manager for Local {
///     type Connection = UnixStream;
///     type Error = io::Error;
///     async fn connect(&self) -> io::Result<UnixStream> {
///         UnixStream::connect(&self.0).await
///     }
///     fn check(&self, conn: &UnixStream) -> Status {
///         connhealth::check(conn)
///     }
/// }
/// # }
/// ```
pub trait Manager: Send + Sync + 'static {
    /// The pooled connection.
    type Connection: Send + 'static;
    /// What `connect` and `ping` fail with.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Opens a new connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Connection, Self::Error>> + Send;

    /// Says whether the connection is still open: cheap, synchronous, no traffic. A
    /// connection reported [`Status::Closed`] is dropped instead of handed out;
    /// `Unknown` and `Readable` are handed out (a manager whose protocol forbids
    /// unsolicited bytes may report `Readable` as closed).
    fn check(&self, conn: &Self::Connection) -> Status;

    /// An application-level round trip, run at checkout only when the pool is built
    /// with [`Builder::ping_after_idle`] and the connection sat idle that long. The
    /// default does nothing.
    fn ping(
        &self,
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send {
        let _ = conn;
        async { Ok(()) }
    }

    /// Polls an idle connection for a close by its peer: `Ready` when it is closed,
    /// `Pending` after arranging for `cx` to be woken when that may have changed (for
    /// tokio I/O types, `poll_read_ready`). The pool's watcher calls it on connections
    /// idle for 20 ms, under the pool's lock: it must only poll readiness and
    /// [`check`](crate::check). The default returns `Pending` and never wakes: idle
    /// connections are then judged at checkout only.
    fn poll_closed(&self, conn: &mut Self::Connection, cx: &mut Context<'_>) -> Poll<()> {
        let _ = (conn, cx);
        Poll::Pending
    }
}

/// Why [`Pool::get`] returned no connection.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum PoolError<E> {
    /// No connection became available within `get_timeout`.
    #[error(
        "timed out waiting for a pooled connection (get_timeout); raise get_timeout or \
         max_size, or return connections sooner"
    )]
    Timeout,
    /// The pool was closed with [`Pool::close`], or by the shutdown of the runtime it
    /// was built on.
    #[error("the pool is closed")]
    Closed,
    /// Opening a new connection failed.
    #[error("could not open a pooled connection: {0}")]
    Connect(#[source] E),
}

/// A pool of connections made by a [`Manager`]. Cloning is cheap and shares the pool.
pub struct Pool<M: Manager> {
    inner: Arc<Inner<M>>,
}

impl<M: Manager> Clone for Pool<M> {
    fn clone(&self) -> Self {
        Pool {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<M: Manager> fmt::Debug for Pool<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<M: Manager> Pool<M> {
    /// A builder with the defaults (see the [module documentation](self)).
    pub fn builder() -> Builder<M> {
        Builder::new()
    }

    /// Checks out a connection: an idle one the kernel says is open (and, when
    /// configured, that answered a ping), else a new one, else the next one returned,
    /// first come first served. Gives up after `get_timeout`.
    ///
    /// Dropping the future at any point leaks nothing: a connection or permit that was
    /// on its way goes to the next waiter.
    pub async fn get(&self) -> Result<Pooled<M>, PoolError<M::Error>> {
        self.inner.get().await
    }

    /// A snapshot of the pool's gauges and counters.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// Closes the pool: queued `get`s fail with [`PoolError::Closed`], and so do later
    /// ones and those still connecting or pinging (closing what they opened): no `get`
    /// succeeds once this has returned. Idle connections are closed now, checked-out
    /// ones when they are returned. The background task exits. Closing again does
    /// nothing.
    pub async fn close(&self) {
        self.inner.close();
    }

    /// True once [`Pool::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
}

/// Configures and builds a [`Pool`]. Out-of-range values are brought into range (and
/// documented at each method), never a panic.
pub struct Builder<M: Manager> {
    config: Config,
    _manager: PhantomData<fn() -> M>,
}

impl<M: Manager> fmt::Debug for Builder<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .finish()
    }
}

impl<M: Manager> Default for Builder<M> {
    fn default() -> Self {
        Builder::new()
    }
}

impl<M: Manager> Builder<M> {
    /// A builder with the defaults.
    pub fn new() -> Builder<M> {
        Builder {
            config: Config {
                max_size: 10,
                min_idle: 0,
                grow_by: 1,
                idle_timeout: Some(Duration::from_secs(600)),
                max_lifetime: Some(Duration::from_secs(1800)),
                lifetime_jitter: 0.1,
                get_timeout: Duration::from_secs(30),
                evict_interval: Duration::from_secs(30),
                ping_after_idle: None,
                watch_idle: true,
            },
            _manager: PhantomData,
        }
    }

    /// The most connections open at once, counting connects in flight (default 10; 0
    /// is taken as 1).
    pub fn max_size(mut self, max_size: usize) -> Self {
        self.config.max_size = max_size.max(1);
        self
    }

    /// Idle connections to keep open: opened at build, and topped up in the background,
    /// within `max_size`: at once when a connection is closed (by its peer, a failed
    /// check, `mark_unusable`, its lifetime), and on each evictor pass for a dip caused
    /// by checkouts (default 0; at most `max_size`).
    pub fn min_idle(mut self, min_idle: usize) -> Self {
        self.config.min_idle = min_idle;
        self
    }

    /// Connections to open at once when the pool must grow: one for the caller, the rest
    /// in the background for the callers behind it (default 1; 0 is taken as 1).
    pub fn grow_by(mut self, batch: usize) -> Self {
        self.config.grow_by = batch.max(1);
        self
    }

    /// Closes connections idle this long, beyond `min_idle` (default 10 minutes; `None`
    /// never). Applied by the evictor, so within `evict_interval` of the deadline.
    pub fn idle_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.config.idle_timeout = timeout.into();
        self
    }

    /// Closes connections this old, give or take the jitter (default 30 minutes; `None`
    /// never). Checked at checkout, on return and by the evictor.
    pub fn max_lifetime(mut self, lifetime: impl Into<Option<Duration>>) -> Self {
        self.config.max_lifetime = lifetime.into();
        self
    }

    /// Spreads each connection's lifetime uniformly over `max_lifetime × (1 ± jitter)`,
    /// drawn when it is opened (default 0.1; clamped to 0..=1, NaN is taken as 0).
    pub fn lifetime_jitter(mut self, jitter: f64) -> Self {
        self.config.lifetime_jitter = if jitter.is_nan() {
            0.0
        } else {
            jitter.clamp(0.0, 1.0)
        };
        self
    }

    /// How long [`Pool::get`] may take in all: waiting, connecting and pinging
    /// (default 30 s). A wait in the queue is timed on the pool's coarse clock, which
    /// costs no system call: it never ends early, and may end up to two scheduler ticks
    /// (a few milliseconds on Linux) late.
    pub fn get_timeout(mut self, timeout: Duration) -> Self {
        self.config.get_timeout = timeout;
        self
    }

    /// How often the evictor applies `idle_timeout` and `max_lifetime` to idle
    /// connections and tops up `min_idle` (default 30 s; clamped to 1 ms..=1 day). A
    /// close by the peer does not wait for it.
    pub fn evict_interval(mut self, interval: Duration) -> Self {
        self.config.evict_interval =
            interval.clamp(Duration::from_millis(1), Duration::from_secs(86_400));
        self
    }

    /// Pings ([`Manager::ping`]) a connection at checkout when it sat idle at least
    /// this long (default: never). The kernel's check runs first in any case.
    pub fn ping_after_idle(mut self, idle: impl Into<Option<Duration>>) -> Self {
        self.config.ping_after_idle = idle.into();
        self
    }

    /// Watches idle connections for a close by the peer with the runtime's readiness
    /// events, through [`Manager::poll_closed`] (default on).
    pub fn watch_idle(mut self, watch: bool) -> Self {
        self.config.watch_idle = watch;
        self
    }

    /// Builds the pool, opening `min_idle` connections first (concurrently). If one of
    /// them fails, the build fails with that error and nothing is left open: a pool that
    /// cannot reach its server at start is usually a configuration error, better seen
    /// now.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime, or on one built without its time driver
    /// (`enable_time`): the pool's background task needs both. It panics before any
    /// connection is opened.
    ///
    /// The pool belongs to the runtime it is built on: its background task runs there,
    /// and a tokio connection is registered with that runtime's I/O driver. When that
    /// runtime shuts down, the pool is closed, and every `get` fails with
    /// [`PoolError::Closed`].
    pub async fn build(self, manager: M) -> Result<Pool<M>, M::Error> {
        let mut config = self.config;
        config.min_idle = config.min_idle.min(config.max_size);
        let maintenance = Maintenance::new(config.evict_interval);
        let inner = Arc::new(Inner::new(manager, config));
        let opening = inner.config.min_idle;
        if opening > 0 {
            inner.reserve_connects(opening);
            let mut connects = tokio::task::JoinSet::new();
            for _ in 0..opening {
                let inner = Arc::clone(&inner);
                // Made before the task, so that one aborted before its first poll
                // frees its permit too.
                let permit = ConnectPermit::new(Arc::clone(&inner));
                connects.spawn(async move {
                    let conn = inner.manager.connect().await?;
                    permit.disarm();
                    let live = inner.live(conn);
                    inner.put(live, false, true);
                    Ok(())
                });
            }
            while let Some(joined) = connects.join_next().await {
                match joined {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => {
                        // Dropping the set aborts the other connects, which free their
                        // permits; closing drops what was opened.
                        drop(connects);
                        inner.close();
                        return Err(err);
                    }
                    Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                    Err(_) => {}
                }
            }
        }
        maintenance.spawn(&inner);
        Ok(Pool { inner })
    }
}

/// A connection checked out of a [`Pool`]. It derefs to the connection, and goes back
/// to the pool when dropped: to the oldest waiter, else to the idle list. It is closed
/// instead if it was marked unusable, if its lifetime is over, if the pool is closed,
/// or if it is dropped during a panic (its protocol state is unknown).
pub struct Pooled<M: Manager> {
    live: Option<Live<M::Connection>>,
    inner: Arc<Inner<M>>,
    unusable: bool,
}

impl<M: Manager> Pooled<M> {
    /// Closes the connection when it is dropped, instead of returning it: for one that
    /// saw an error, or whose protocol state is no longer known. Its permit is freed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// # let pool = connhealth::pool::Pool::builder()
    /// #     .build(connhealth::pool::TcpManager::new(server.local_addr()?.to_string())).await?;
    /// let mut conn = pool.get().await?;
    /// conn.mark_unusable();
    /// drop(conn);
    /// assert_eq!(pool.stats().size(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn mark_unusable(&mut self) {
        self.unusable = true;
    }

    /// Takes the connection out of the pool for good. Its permit is freed (and handed to
    /// the oldest waiter).
    pub fn detach(mut self) -> M::Connection {
        let live = self
            .live
            .take()
            .expect("a Pooled holds its connection until dropped");
        self.inner.release_permit(false);
        live.conn
    }
}

impl<M: Manager> Deref for Pooled<M> {
    type Target = M::Connection;

    fn deref(&self) -> &M::Connection {
        &self
            .live
            .as_ref()
            .expect("a Pooled holds its connection until dropped")
            .conn
    }
}

impl<M: Manager> DerefMut for Pooled<M> {
    fn deref_mut(&mut self) -> &mut M::Connection {
        &mut self
            .live
            .as_mut()
            .expect("a Pooled holds its connection until dropped")
            .conn
    }
}

impl<M: Manager> Drop for Pooled<M> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            let discard = self.unusable || std::thread::panicking();
            self.inner.put(live, discard, false);
        }
    }
}

impl<M: Manager> fmt::Debug for Pooled<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pooled")
            .field("unusable", &self.unusable)
            .finish_non_exhaustive()
    }
}
