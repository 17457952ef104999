//! Accepting and serving connections, with bounds on what one client can hold.
//!
//! axum's own `serve` gives hyper no timer, so a client that opens a connection and
//! sends a header a byte a minute (slowloris) holds it for ever. Here hyper serves each
//! connection with:
//!
//! * a header read timeout ([`HEADER_READ_TIMEOUT`]), which also closes a keep-alive
//!   connection left idle that long (Prometheus reconnects at its next scrape);
//! * a write stall timeout ([`WRITE_STALL`]): a client that stops reading its answer
//!   is dropped, and with it the renderer that was waiting for it;
//! * at most [`MAX_CONNECTIONS`] connections at once; more wait in the listen backlog.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Sleep;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// A request's headers must arrive within this of the connection (or the last answer).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A write that makes no progress for this long ends the connection.
const WRITE_STALL: Duration = Duration::from_secs(30);

/// Connections served at once. `/probe` scrapes come in bursts of one connection per
/// probe; each costs a descriptor and a few KiB.
const MAX_CONNECTIONS: usize = 1024;

/// After `shutdown`, how long the answers under way have to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(250);

/// Accepts on `listener` and serves `router` until `shutdown` completes. Each connection
/// is TLS when `tls` gives a server config at its accept (the web config in force, so a
/// renewed certificate serves the next connection), plain HTTP otherwise.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    tls: impl Fn() -> Option<Arc<ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let graceful = GracefulShutdown::new();
    let places = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let place = tokio::select! {
            place = Arc::clone(&places).acquire_owned() => place,
            () = &mut shutdown => break,
        };
        let Ok(place) = place else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    accept_failed(&err).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Answers are small and written at once: do not let Nagle hold their last
        // segment for the client's delayed ACK.
        let _ = stream.set_nodelay(true);
        let stream = WriteStall::new(stream);
        let service = TowerToHyperService::new(router.clone());
        let watcher = graceful.watcher();
        let http = http.clone();
        let tls = tls();
        tokio::spawn(async move {
            match tls {
                None => serve_one(&http, watcher, stream, service).await,
                // The handshake is bounded like a request's header: a client that opens
                // a connection and says nothing holds a place for 10 s at most.
                Some(tls) => {
                    let handshake = TlsAcceptor::from(tls).accept(stream);
                    match tokio::time::timeout(HEADER_READ_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => serve_one(&http, watcher, stream, service).await,
                        // Plain HTTP sent to the TLS port lands here: no answer, closed.
                        Ok(Err(err)) => tracing::debug!("TLS handshake failed: {err}"),
                        Err(_) => tracing::debug!(
                            "TLS handshake not done within {HEADER_READ_TIMEOUT:?}; closed"
                        ),
                    }
                }
            }
            drop(place);
        });
    }
    drop(listener);
    // Idle keep-alive connections close at once; answers under way get a moment.
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await;
    Ok(())
}

/// Serves one connection, plain or TLS, until it ends or the server shuts down.
async fn serve_one<I>(
    http: &hyper::server::conn::http1::Builder,
    watcher: Watcher,
    io: I,
    service: TowerToHyperService<Router>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let connection = http.serve_connection(TokioIo::new(io), service);
    if let Err(err) = watcher.watch(connection).await {
        tracing::debug!("HTTP connection ended: {err}");
    }
}

/// After a failed accept: out of descriptors (EMFILE, ENFILE) is waited out, since
/// accepting again at once would spin; anything else (a connection reset before it was
/// accepted) is the client's and is skipped.
async fn accept_failed(err: &io::Error) {
    match err.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            tracing::warn!("cannot accept an HTTP connection: {err}; retrying in 100 ms");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        _ => tracing::debug!("accept failed: {err}"),
    }
}

/// A TCP stream whose writes fail with `TimedOut` after [`WRITE_STALL`] without
/// progress. Reads are bounded by hyper's header read timeout.
struct WriteStall {
    stream: TcpStream,
    /// Armed when a write could not proceed; disarmed when one does.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteStall {
    fn new(stream: TcpStream) -> WriteStall {
        WriteStall {
            stream,
            stalled: None,
        }
    }

    /// Called when a write returned `Pending`: `Pending` still, or the timeout's error.
    fn poll_stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let stalled = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        ready!(stalled.as_mut().poll(cx));
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {WRITE_STALL:?}"),
        )))
    }

    fn progress<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match poll {
            Poll::Pending => self.poll_stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl AsyncRead for WriteStall {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for WriteStall {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.progress(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.progress(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_flush(cx);
        this.progress(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.stream).poll_shutdown(cx);
        this.progress(cx, poll)
    }
}
