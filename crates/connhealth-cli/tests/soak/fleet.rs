//! The soak's targets: one loopback listener per target, owned by the driver, a tenth of
//! them flapping on a schedule the driver records.
//!
//! A flapping target's listener is closed (a probe is then refused, a held connection
//! gets its server's FIN) and bound again, with `SO_REUSEADDR` so that the TIME_WAIT of
//! the held connections it closed does not stop the rebind. `hold` and `connect` targets'
//! listeners are accepted from: `connect` connections (already reset by the daemon) are
//! dropped, held ones are kept until the listener closes or the daemon lets them go.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use socket2::{Domain, Socket, Type};

/// A target's check kind, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    HalfOpen,
    Connect,
    Hold,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::HalfOpen => "half-open",
            Kind::Connect => "connect",
            Kind::Hold => "hold",
        }
    }

    /// The daemon makes connections that the driver must accept.
    fn accepts(self) -> bool {
        self != Kind::HalfOpen
    }
}

/// How a flapping target's listener comes and goes.
#[derive(Debug, Clone, Copy)]
pub struct Flap {
    /// After the driver starts flapping, when this listener first closes.
    pub first_close: Duration,
    /// How long it stays closed each time.
    pub closed: Duration,
    /// How long it stays open between closes.
    pub open: Duration,
}

/// One target of the soak.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub address: SocketAddr,
    pub kind: Kind,
    pub flap: Option<Flap>,
}

/// The driver closed or reopened a listener.
#[derive(Debug, Clone, Copy)]
pub struct Change {
    pub target: usize,
    pub at: SystemTime,
    pub open: bool,
}

/// A listener on `address`, with `SO_REUSEADDR`, non-blocking.
pub fn listen(address: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&address.into())?;
    // Room for a burst of SYNs and of `connect` handshakes between two accepts.
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// One target's listener and the connections accepted from it.
#[derive(Debug)]
struct Served {
    listener: Option<TcpListener>,
    held: Vec<TcpStream>,
}

/// What the flapping thread reports when it stops.
#[derive(Debug, Default)]
pub struct FlapperReport {
    /// Listeners closed and reopened.
    pub closes: u64,
    pub reopens: u64,
    /// Rebinds that failed (and were tried again 10 ms later).
    pub rebind_retries: u64,
    /// Connections accepted from `connect` and `hold` listeners.
    pub accepted: u64,
}

/// The listeners and held connections as the driver left them, to be dropped once the
/// daemon has stopped: a target whose listener closed then would go down.
#[derive(Debug)]
pub struct Sockets(#[allow(dead_code)] Vec<Served>);

/// Runs the driver's side: flaps the flapping targets, from `start`, until
/// `stop_flapping`, and accepts on the `connect` and `hold` listeners until `stop`. Every
/// change goes to `changes`, with its time taken just before the listener is closed or
/// bound again (the daemon cannot see a change before that). Must run in the network namespace of `listeners`, which it rebinds.
pub fn serve(
    targets: &[Target],
    listeners: Vec<TcpListener>,
    start: Instant,
    stop_flapping: &AtomicBool,
    stop: &AtomicBool,
    changes: mpsc::Sender<Change>,
) -> (FlapperReport, Sockets) {
    let mut served: Vec<Served> = listeners
        .into_iter()
        .map(|listener| Served {
            listener: Some(listener),
            held: Vec::new(),
        })
        .collect();
    let mut report = FlapperReport::default();
    let mut due: BinaryHeap<Reverse<(Instant, usize)>> = targets
        .iter()
        .enumerate()
        .filter_map(|(index, t)| Some(Reverse((start + t.flap?.first_close, index))))
        .collect();
    let accepting: Vec<usize> = (0..targets.len())
        .filter(|&i| targets[i].kind.accepts())
        .collect();
    let mut polled: Vec<libc::pollfd> = Vec::with_capacity(accepting.len());
    let mut polled_index: Vec<usize> = Vec::with_capacity(accepting.len());
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if stop_flapping.load(Ordering::Relaxed) {
            due.clear();
        }
        while let Some(&Reverse((at, index))) = due.peek() {
            if at > now {
                break;
            }
            due.pop();
            let flap = targets[index].flap.expect("only flapping targets are due");
            let target = &mut served[index];
            let next = if target.listener.is_some() {
                // The listener first, then the held connections: the daemon's confirming
                // probe after their FIN must find nothing listening.
                let at = SystemTime::now();
                target.listener = None;
                target.held.clear();
                report.closes += 1;
                send(&changes, index, at, false);
                now + flap.closed
            } else {
                let at = SystemTime::now();
                match listen(targets[index].address) {
                    Ok(listener) => {
                        target.listener = Some(listener);
                        report.reopens += 1;
                        send(&changes, index, at, true);
                        now + flap.open
                    }
                    Err(_) => {
                        report.rebind_retries += 1;
                        now + Duration::from_millis(10)
                    }
                }
            };
            due.push(Reverse((next, index)));
        }
        polled.clear();
        polled_index.clear();
        for &index in &accepting {
            if let Some(listener) = &served[index].listener {
                polled.push(libc::pollfd {
                    fd: listener.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                });
                polled_index.push(index);
            }
        }
        let wait = due
            .peek()
            .map_or(Duration::from_millis(20), |Reverse((at, _))| {
                at.saturating_duration_since(Instant::now())
            })
            .min(Duration::from_millis(20));
        // SAFETY: `polled` is a live, initialised array of `polled.len()` pollfds, and
        // every fd in it belongs to a listener in `served`, open for the whole call.
        let ready = unsafe {
            libc::poll(
                polled.as_mut_ptr(),
                polled.len() as libc::nfds_t,
                wait.as_millis() as libc::c_int,
            )
        };
        if ready <= 0 {
            continue;
        }
        for (pollfd, &index) in polled.iter().zip(&polled_index) {
            if pollfd.revents == 0 {
                continue;
            }
            let target = &mut served[index];
            let Some(listener) = &target.listener else {
                continue;
            };
            while let Ok((conn, _)) = listener.accept() {
                report.accepted += 1;
                if targets[index].kind == Kind::Hold {
                    // The daemon lets a held connection go when it reconnects; keep only
                    // the open ones, so the driver's own descriptors stay flat too.
                    target
                        .held
                        .retain(|held| !connhealth::check(held).is_closed());
                    target.held.push(conn);
                }
            }
        }
    }
    (report, Sockets(served))
}

fn send(changes: &mpsc::Sender<Change>, target: usize, at: SystemTime, open: bool) {
    let _ = changes.send(Change { target, at, open });
}
