//! One connection of the `http` check: a TCP connection connhealth opens itself, TLS on
//! it for https, and hyper's HTTP/1.1 client protocol on top, driven by a task of its
//! own. The socket stays at hand beside hyper, so the kernel can be asked about it
//! ([`connhealth::check`], one `poll`) before each reuse.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use connhealth::Status;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use super::url::Origin;
use crate::checks::close::{close_gracefully, close_now};
use crate::checks::tls::{TlsClient, Verified};
use crate::checks::{ChainInfo, CheckResult, Outcome};
use crate::config::TlsPlan;
use crate::human::Rounded;

/// The request body type: the plan's bytes, whole.
pub(super) type Body = Full<Bytes>;

/// An open HTTP/1.1 connection to one origin.
#[derive(Debug)]
pub(super) struct Conn {
    /// Whom it is connected to.
    pub(super) origin: Origin,
    /// The address it connected to.
    pub(super) addr: SocketAddr,
    /// What its TLS handshake showed (https).
    pub(super) tls: Option<Verified>,
    /// What blackbox reports of its peer's chain besides the expiry (https).
    pub(super) chain: Option<Box<ChainInfo>>,
    /// Kept from an earlier check, and not used yet in this one.
    pub(super) carried: bool,
    /// How it was verified (https): a kept connection serves only a check that would
    /// verify it the same way.
    pub(super) verified_for: Option<Trust>,
    sender: http1::SendRequest<Body>,
    driver: Driver,
    tcp: Arc<TcpStream>,
}

/// How an https connection is verified: the trust, and the name sent as SNI and
/// verified (unless `plan.server_name` overrides it).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Trust {
    pub(super) plan: TlsPlan,
    pub(super) name: String,
}

impl Trust {
    /// The same verification, whatever `cert_min_days` says (it is judged at each check).
    pub(super) fn verifies_as(&self, other: &Trust) -> bool {
        let TlsPlan {
            server_name,
            ca_file,
            insecure,
            cert_min_days: _,
            client_cert,
            min_version,
            max_version,
        } = &self.plan;
        self.name == other.name
            && *server_name == other.plan.server_name
            && *ca_file == other.plan.ca_file
            && *insecure == other.plan.insecure
            && *client_cert == other.plan.client_cert
            && *min_version == other.plan.min_version
            && *max_version == other.plan.max_version
    }
}

/// What opening a connection took.
#[derive(Debug)]
pub(super) struct Opened {
    pub(super) conn: Conn,
    /// The TCP handshake.
    pub(super) connect: Duration,
    /// The TLS handshake (zero for http).
    pub(super) tls: Duration,
}

/// hyper's side of a connection, in a task of its own, stopped when dropped: a
/// connection given up mid-answer (a timeout) must not leave a task waiting forever.
#[derive(Debug)]
struct Driver(JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects to `addr`, completes the TLS handshake with `tls` when given (https), and
/// starts hyper's client on the connection, all by `deadline`.
///
/// Failures are the `tls` kind's: connect errors as [`Outcome::of_io_error`] maps them,
/// `Tls` with rustls's reason (and the chain's expiry when one arrived), `Timeout`
/// naming the phase.
pub(super) async fn open(
    origin: &Origin,
    addr: SocketAddr,
    tls: Option<TlsClient>,
    deadline: Instant,
    timeout: Duration,
) -> Result<Opened, CheckResult> {
    let start = Instant::now();
    let tcp = match timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(err)) => {
            let detail = format!("connect: {err}");
            return Err(CheckResult::failed(
                Outcome::of_io_error(&err),
                start.elapsed(),
                detail,
            ));
        }
        Err(_) => {
            let detail = format!("no connection within {}", Rounded(timeout));
            return Err(CheckResult::failed(
                Outcome::Timeout,
                start.elapsed(),
                detail,
            ));
        }
    };
    // The request goes out at once, not behind the ACK of the previous segment (Nagle).
    let _ = tcp.set_nodelay(true);
    let connect = start.elapsed();
    let tcp = Arc::new(tcp);
    let shared = SharedTcp(Arc::clone(&tcp));

    let opened = |tls: Option<Verified>, chain, (sender, driver), tcp, tls_time| Opened {
        conn: Conn {
            origin: origin.clone(),
            addr,
            tls,
            chain,
            carried: false,
            verified_for: None,
            sender,
            driver,
            tcp,
        },
        connect,
        tls: tls_time,
    };
    let Some(client) = tls else {
        let hyper = start_hyper(shared, start).await?;
        return Ok(opened(None, None, hyper, tcp, Duration::ZERO));
    };

    let handshake_start = Instant::now();
    let stream = match timeout_at(deadline, client.handshake(shared, start)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(mut failed)) => {
            // rustls's alert is out; the FIN follows, and the server's is waited for.
            close(tcp, deadline).await;
            failed.cert_expiry = client.cert_expiry();
            return Err(failed);
        }
        Err(_) => {
            close_now(&tcp);
            let detail = format!("no TLS handshake within {}", Rounded(timeout));
            let mut failed = CheckResult::failed(Outcome::Timeout, start.elapsed(), detail);
            failed.cert_expiry = client.cert_expiry();
            return Err(failed);
        }
    };
    let tls_time = handshake_start.elapsed();
    let verified = client.verified(stream.get_ref().1);
    let chain = client.chain_info().map(Box::new);
    let hyper = start_hyper(stream, start).await?;
    Ok(opened(Some(verified), chain, hyper, tcp, tls_time))
}

/// hyper's HTTP/1.1 client on `io`, its connection driven by a task of its own.
async fn start_hyper<IO>(
    io: IO,
    start: Instant,
) -> Result<(http1::SendRequest<Body>, Driver), CheckResult>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|err| {
            let detail = format!("HTTP setup: {err}");
            CheckResult::failed(Outcome::Error, start.elapsed(), detail)
        })?;
    let driver = tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::debug!(%err, "http check: the connection ended with an error");
        }
    });
    Ok((sender, Driver(driver)))
}

/// Why a request got no answer.
#[derive(Debug)]
pub(super) struct SendFailure {
    error: hyper::Error,
    /// hyper gave the request back: none of it was written.
    unsent: bool,
}

impl SendFailure {
    /// True when the connection was found closed before any answer: the server closed
    /// it while it was idle, maybe just as the request went out (its FIN on the way,
    /// or an RST for the request that reached a closed socket). Another connection may
    /// well be answered; a timeout is never this.
    pub(super) fn closed_before_answer(&self) -> bool {
        let err = &self.error;
        self.unsent
            || err.is_canceled()
            || err.is_closed()
            || err.is_incomplete_message()
            || io_error(err).is_some_and(|io| {
                matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionReset
                        | io::ErrorKind::ConnectionAborted
                        | io::ErrorKind::BrokenPipe
                        | io::ErrorKind::UnexpectedEof
                )
            })
    }

    /// The failed result: an I/O error's outcome (a reset is `Closed`), `Closed` for a
    /// connection closed before the answer was whole, `Error` for an answer that is not
    /// HTTP.
    pub(super) fn result(&self, took: Duration) -> CheckResult {
        let err = &self.error;
        let (outcome, detail) = if let Some(io) = io_error(err) {
            (Outcome::of_io_error(io), format!("request: {io}"))
        } else if self.unsent || err.is_canceled() || err.is_closed() {
            (
                Outcome::Closed,
                "the server closed the connection".to_string(),
            )
        } else if err.is_incomplete_message() {
            let detail = "the server closed the connection before its answer was whole";
            (Outcome::Closed, detail.to_string())
        } else if err.is_parse() {
            (Outcome::Error, format!("not an HTTP answer: {err}"))
        } else {
            (Outcome::Error, format!("request: {err}"))
        };
        CheckResult::failed(outcome, took, detail)
    }
}

/// The I/O error under a hyper error, when there is one.
pub(super) fn io_error(err: &hyper::Error) -> Option<&io::Error> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

impl Conn {
    /// Why this connection cannot carry another request, or `Ok` when it can: hyper
    /// still has it, and the kernel says it is open. A server's close is seen here,
    /// before the request, whether or not hyper's task has read the FIN yet.
    pub(super) fn still_open(&self) -> Result<(), String> {
        if self.sender.is_closed() || self.driver.0.is_finished() {
            return Err("hyper closed it".into());
        }
        match connhealth::check(&*self.tcp) {
            Status::Open => Ok(()),
            // TLS records the server sent while the connection was idle (TLS 1.3 session
            // tickets, a key update): hyper's task reads them through rustls.
            Status::Readable if self.tls.is_some() => Ok(()),
            // On plain HTTP, bytes nobody asked for would be read as the next answer.
            Status::Readable => Err("the server sent bytes while it was idle".into()),
            Status::Closed(how) => Err(format!("closed by the server ({how})")),
            other => Err(format!("the kernel could not say ({other})")),
        }
    }

    /// Sends `request` and waits for the answer's head (no time limit of its own: the
    /// caller's).
    pub(super) async fn send(
        &mut self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, SendFailure> {
        // Until hyper's task is back to idle after the previous answer, a request would
        // be refused as if the connection were closed.
        if let Err(error) = self.sender.ready().await {
            return Err(SendFailure {
                error,
                unsent: true,
            });
        }
        self.sender
            .try_send_request(request)
            .await
            .map_err(|mut failed| SendFailure {
                unsent: failed.take_message().is_some(),
                error: failed.into_error(),
            })
    }

    /// Closes the connection gracefully by `deadline`: hyper shuts it down (TLS
    /// close_notify, then a FIN), then what the server still sends is read until its
    /// FIN, so that the close is never an RST. Past the deadline, it is closed at once.
    pub(super) async fn close(self, deadline: Instant) {
        let Conn {
            sender,
            mut driver,
            tcp,
            ..
        } = self;
        // With no sender left, hyper's task ends the idle connection: `poll_shutdown`.
        drop(sender);
        if timeout_at(deadline, &mut driver.0).await.is_err() {
            return; // `driver` stops the task; the socket closes with the last handle
        }
        close(tcp, deadline).await;
    }
}

/// The end of a connection nobody else holds: FIN, then the server's FIN waited for.
async fn close(tcp: Arc<TcpStream>, deadline: Instant) {
    match Arc::try_unwrap(tcp) {
        Ok(mut tcp) => close_gracefully(&mut tcp, deadline).await,
        Err(tcp) => close_now(&tcp),
    }
}

/// The socket under a connection, shared: hyper reads and writes it (through TLS for
/// https), and the connection keeps a handle to ask the kernel about it, which hyper's
/// owned I/O would not allow. Reads and writes go through tokio's readiness, as
/// `TcpStream`'s own do.
#[derive(Debug, Clone)]
struct SharedTcp(Arc<TcpStream>);

impl AsyncRead for SharedTcp {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.0.poll_read_ready(cx))?;
            match self.0.try_read_buf(buf) {
                // A spurious readiness: `try_read_buf` cleared it, so wait again.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                read => return Poll::Ready(read.map(drop)),
            }
        }
    }
}

impl AsyncWrite for SharedTcp {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write_vectored(data) {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // TCP has no buffer of ours to flush
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A FIN. The socket itself closes when its last handle goes.
        Poll::Ready(match SockRef::from(&*self.0).shutdown(Shutdown::Write) {
            // Already shut, or the peer is gone: nothing is left to send either way.
            Err(err) if err.kind() == io::ErrorKind::NotConnected => Ok(()),
            done => done,
        })
    }
}
