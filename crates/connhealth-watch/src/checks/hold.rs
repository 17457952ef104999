//! The `hold` check: one established connection per target, watched for its close.
//!
//! No other health checker has this. HAProxy, blackbox_exporter and Gatus ask every
//! `interval`, so a crashed server is noticed only after `interval × fall`. A held
//! connection is closed by the server's kernel the moment the process dies (a FIN, or an
//! RST when data was unread), and the runtime hears of it through a readiness event, with
//! no check running. The close alone proves little: servers close idle connections
//! (Redis `timeout`, MySQL `wait_timeout`, a proxy's idle cut). So the scheduler confirms
//! it at once with a half-open probe: refused means nothing listens any more, and the
//! target is down within milliseconds; a SYN-ACK means the server is alive and only
//! dropped an idle connection, so the connection is made again and the target stays up.
//!
//! A peer that vanishes without a FIN or an RST is bounded twice: by a [`DeadPeer`]
//! policy on the held connection (keepalive plus `TCP_USER_TIMEOUT`), and by the
//! half-open probe that the scheduler makes every `interval`, like the `half-open` kind.
//!
//! On the wire: one connection, opened once and left idle. Nothing is ever sent on it.
//! Bytes the server sends (a greeting) are read and dropped, so that its close stays a
//! FIN and unread data never turns it into an RST.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use connhealth::probe::Target;
use connhealth::{check, Closed, DeadPeer, Status};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::CheckResult;
use crate::config::CheckPlan;

/// A target's held connection: a task that connects when asked, watches the connection
/// and calls `on_close` when it closes. Dropping it closes the connection.
#[derive(Debug)]
pub struct Hold {
    control: Arc<Control>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct Control {
    held: AtomicBool,
    connect: Notify,
}

impl Hold {
    /// Starts the task, on the current runtime, and asks it for a first connection.
    /// Each connect may take `timeout`; the connection gets `dead_peer`'s bound.
    pub fn spawn(
        address: Target,
        timeout: Duration,
        dead_peer: DeadPeer,
        on_close: impl Fn(String) + Send + 'static,
    ) -> Hold {
        let control = Arc::new(Control::default());
        let task = tokio::spawn(hold(
            Arc::clone(&control),
            address,
            timeout,
            dead_peer,
            on_close,
        ));
        let hold = Hold { control, task };
        hold.reconnect();
        hold
    }

    /// [`Hold::spawn`] for a target checked as `plan` says: each connect within its
    /// timeout, the connection bounded by [`dead_peer_bound`] of its interval and `fall`.
    pub fn for_plan(
        address: Target,
        plan: &CheckPlan,
        on_close: impl Fn(String) + Send + 'static,
    ) -> Hold {
        let bound = dead_peer_bound(plan.interval, plan.fall);
        Hold::spawn(address, plan.timeout, bound, on_close)
    }

    /// A probe of the held target ended with `result`: after a success, connect again if
    /// nothing is held (the close was an idle cut, or the server came back). A
    /// `confirming` probe, made the moment the held connection closed, that fails is
    /// conclusive: the server is gone, and the target is down at once, whatever `fall`
    /// says, rather than after `fall` scheduled checks.
    pub fn after_probe(&self, result: &mut CheckResult, confirming: bool) {
        if result.is_ok() {
            self.reconnect();
        }
        if confirming {
            result.conclusive = result.outcome.is_failure();
        }
    }

    /// True while a connection is established and open.
    pub fn is_held(&self) -> bool {
        self.control.held.load(Ordering::Acquire)
    }

    /// Asks for a connection if none is held (after a close that the probe showed was
    /// only an idle cut, or after a scheduled check found the server up again).
    pub fn reconnect(&self) {
        if !self.is_held() {
            self.control.connect.notify_one();
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The bound for a held connection of a target checked every `interval`, `fall` failures
/// to down: the scheduled probes would see a vanished peer within `interval × fall`, and
/// the connection should not outlive that by much. Never below what `DeadPeer` can do.
pub fn dead_peer_bound(interval: Duration, fall: u32) -> DeadPeer {
    let bound = interval
        .saturating_mul(fall)
        .max(DeadPeer::MIN_BOUND.max(Duration::from_secs(3)));
    DeadPeer::try_detect_within(bound.min(DeadPeer::MAX_BOUND))
        .unwrap_or_else(|_| DeadPeer::detect_within(Duration::from_secs(10)))
}

async fn hold(
    control: Arc<Control>,
    address: Target,
    timeout: Duration,
    dead_peer: DeadPeer,
    on_close: impl Fn(String),
) {
    // The held connection closed, and no connection was made since.
    let mut just_closed = false;
    loop {
        control.connect.notified().await;
        if control.held.load(Ordering::Acquire) {
            continue;
        }
        // A failed connect is not reported here: the scheduled probes say whether the
        // target is up, and a success asks for the next try. But for the first try after
        // a close: a server being killed closes its connections a moment before its
        // listener, so the probe that confirmed the close may have had its SYN-ACK from a
        // listener that is gone now. Its refusal is a close of its own: confirmed again,
        // once, so that the target is down at once rather than after `fall` checks.
        let stream = match connect(&address, timeout).await {
            Ok(stream) => stream,
            Err(err) if just_closed && err.kind() == io::ErrorKind::ConnectionRefused => {
                just_closed = false;
                on_close(format!(
                    "the server closed the held connection, and refused a new one: {err}"
                ));
                continue;
            }
            Err(_) => continue,
        };
        if let Err(err) = dead_peer.apply(&stream) {
            tracing::debug!(%err, "hold: cannot bound the held connection with DeadPeer");
        }
        control.held.store(true, Ordering::Release);
        let why = watch(&stream).await;
        control.held.store(false, Ordering::Release);
        drop(stream);
        just_closed = true;
        on_close(why);
    }
}

async fn connect(address: &Target, timeout: Duration) -> io::Result<TcpStream> {
    let connecting = async {
        match address {
            Target::Addr(addr) => TcpStream::connect(*addr).await,
            Target::Name { host, port } => TcpStream::connect((host.as_str(), *port)).await,
            _ => Err(io::Error::other("unsupported target")),
        }
    };
    tokio::time::timeout(timeout, connecting)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Waits until the connection closes and says how.
async fn watch(stream: &TcpStream) -> String {
    let mut scratch = [0u8; 4096];
    loop {
        if let Err(err) = stream.readable().await {
            return format!("the held connection failed: {err}");
        }
        // Ask the kernel, not the runtime's cached readiness (see `connhealth::check`).
        if let Status::Closed(how) = check(stream) {
            return describe(how);
        }
        match stream.try_read(&mut scratch) {
            Ok(0) => return describe(Closed::Eof),
            // A greeting, or a keepalive of the protocol's own: read and dropped.
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
            Err(err) => return format!("the held connection failed: {err}"),
        }
    }
}

fn describe(how: Closed) -> String {
    match how {
        Closed::Eof => "the server closed the held connection (FIN)".into(),
        Closed::Reset => "the server reset the held connection (RST)".into(),
        Closed::TimedOut => {
            "the held connection timed out: the server went silent (DeadPeer bound)".into()
        }
        Closed::Aborted => "the held connection was aborted locally".into(),
        other => format!("the held connection closed: {other}"),
    }
}
