//! [`TcpManager`]: pooled tokio `TcpStream`s, checked by the kernel.

use std::io;
use std::task::{Context, Poll};
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::Interest;
use tokio::net::TcpStream;

use super::Manager;
use crate::{DeadPeer, Status};

/// A [`Manager`] for TCP connections to one address: tokio `TcpStream`s, checked with
/// [`check`](crate::check) at every checkout, and watched while idle.
///
/// ```
/// use std::time::Duration;
/// use connhealth::pool::TcpManager;
///
/// let manager = TcpManager::new("127.0.0.1:6379")
///     .nodelay(true)
///     .keepalive(Duration::from_secs(30))
///     .connect_timeout(Duration::from_secs(2));
/// assert_eq!(manager.addr(), "127.0.0.1:6379");
/// ```
#[derive(Debug, Clone)]
pub struct TcpManager {
    addr: String,
    nodelay: bool,
    keepalive: Option<Duration>,
    connect_timeout: Option<Duration>,
    dead_peer: Option<DeadPeer>,
}

impl TcpManager {
    /// Connections to `addr` (`host:port`; a name is resolved at each connect). By
    /// default: `TCP_NODELAY` on (pooled connections carry requests, not bulk data), no
    /// keepalive, connect timeout 10 s.
    pub fn new(addr: impl Into<String>) -> TcpManager {
        TcpManager {
            addr: addr.into(),
            nodelay: true,
            keepalive: None,
            connect_timeout: Some(Duration::from_secs(10)),
            dead_peer: None,
        }
    }

    /// Sets `TCP_NODELAY` on each new connection.
    pub fn nodelay(mut self, nodelay: bool) -> Self {
        self.nodelay = nodelay;
        self
    }

    /// Turns TCP keepalive on, with the first probe after `idle` (`None`: off). Linux
    /// counts keepalive times in whole seconds.
    pub fn keepalive(mut self, idle: impl Into<Option<Duration>>) -> Self {
        self.keepalive = idle.into();
        self
    }

    /// Applies a [`DeadPeer`] policy to each new connection: once a peer goes silent (no
    /// FIN, no RST), the kernel fails its connection within the policy's bound, and the
    /// pool drops it at the next checkout, or at once while it is idle and watched. The
    /// policy sets keepalive itself, so it replaces [`TcpManager::keepalive`]. A bound
    /// the platform cannot honour makes every connect fail, with the reason.
    ///
    /// Give the same policy to [`ProberBuilder::dead_peer`](crate::ProberBuilder::dead_peer)
    /// so that a health checker and the pool agree on how long "silent" may last.
    ///
    /// ```
    /// use std::time::Duration;
    /// use connhealth::{pool::TcpManager, DeadPeer};
    ///
    /// let manager = TcpManager::new("127.0.0.1:6379")
    ///     .dead_peer(DeadPeer::detect_within(Duration::from_secs(10)));
    /// # drop(manager);
    /// ```
    pub fn dead_peer(mut self, policy: DeadPeer) -> Self {
        self.dead_peer = Some(policy);
        self
    }

    /// Gives up a connect (name resolution included) after `timeout` (`None`: wait for
    /// the kernel, minutes for an unanswered SYN).
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// The address connections go to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    async fn open(&self) -> io::Result<TcpStream> {
        let connect = TcpStream::connect(self.addr.as_str());
        let stream = match self.connect_timeout {
            Some(limit) => tokio::time::timeout(limit, connect).await.map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timed out after {limit:?} (TcpManager::connect_timeout)"),
                )
            })??,
            None => connect.await?,
        };
        self.configure(&stream)?;
        Ok(stream)
    }

    /// Socket options applied to each new connection, right after connect.
    fn configure(&self, stream: &TcpStream) -> io::Result<()> {
        let sock = SockRef::from(stream);
        sock.set_tcp_nodelay(self.nodelay)?;
        if let Some(policy) = self.dead_peer {
            policy.apply(stream)?;
        } else if let Some(idle) = self.keepalive {
            sock.set_tcp_keepalive(&TcpKeepalive::new().with_time(idle))?;
        }
        Ok(())
    }
}

impl Manager for TcpManager {
    type Connection = TcpStream;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<TcpStream> {
        self.open()
            .await
            .map_err(|err| io::Error::new(err.kind(), format!("connect to {}: {err}", self.addr)))
    }

    fn check(&self, conn: &TcpStream) -> Status {
        crate::check(conn)
    }

    /// Ready when the kernel says the idle connection is closed. Otherwise registers
    /// for read readiness: epoll reports a FIN or RST as readable (`EPOLLIN|EPOLLRDHUP`),
    /// which wakes the pool's watcher.
    fn poll_closed(&self, conn: &mut TcpStream, cx: &mut Context<'_>) -> Poll<()> {
        // A readiness left over from the connection's last use is cleared once, and
        // then the poll registers for the next event.
        for _ in 0..3 {
            match conn.poll_read_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(_)) => return Poll::Ready(()),
                Poll::Ready(Ok(())) => {}
            }
            // Readiness is cached by tokio and may be stale: ask the kernel.
            if crate::check(conn).is_closed() {
                return Poll::Ready(());
            }
            // Open (or data waiting, which is the next user's business): clear the
            // cached readiness so that the next event, a FIN or RST, wakes us again.
            // tokio's epoll is edge-triggered, so a close behind unread bytes still
            // arrives as a new event.
            let _ = conn.try_io(Interest::READABLE, || {
                Err::<(), _>(io::Error::from(io::ErrorKind::WouldBlock))
            });
        }
        // Events kept arriving (a peer writing to an idle connection), so none is
        // registered: ask for another poll soon rather than hold the pool's lock longer.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
