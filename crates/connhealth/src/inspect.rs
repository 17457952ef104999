//! TCP_INFO diagnosis: [`inspect`], [`Inspection`], [`TcpState`].

use std::io;
use std::time::Duration;

use crate::sys;

/// What the kernel knows about a TCP connection, from one `getsockopt(TCP_INFO)`.
///
/// Where [`check`](crate::check) answers "open or closed?", an inspection says how the
/// connection is doing: whether data is stuck, how often it has been retransmitted, how
/// long since the peer last sent anything. [`stalled`](Inspection::stalled) is the early
/// warning: it turns true on the first retransmission timeout, seconds before any
/// keepalive or user timeout fails the connection.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Inspection {
    /// The TCP state (`tcpi_state`).
    pub state: TcpState,
    /// Smoothed round-trip time (`tcpi_rtt`).
    pub rtt: Duration,
    /// Round-trip time variation (`tcpi_rttvar`).
    pub rtt_var: Duration,
    /// The current retransmission timeout, backoff included (`tcpi_rto`).
    pub rto: Duration,
    /// Consecutive retransmission timeouts of the oldest unacknowledged segment, now
    /// (`tcpi_retransmits`); back to 0 once the peer acknowledges.
    pub retransmits: u8,
    /// Segments retransmitted over the connection's life (`tcpi_total_retrans`).
    pub total_retransmits: u32,
    /// Exponential backoff of the retransmission or zero-window probe timer
    /// (`tcpi_backoff`): the RTO has been doubled this many times.
    pub backoff: u8,
    /// Unanswered keepalive or zero-window probes (`tcpi_probes`).
    pub probes: u8,
    /// Segments sent and not yet acknowledged (`tcpi_unacked`). In segments, not bytes:
    /// TCP_INFO counts packets in flight.
    pub unacked: u32,
    /// Segments the kernel believes lost (`tcpi_lost`).
    pub lost: u32,
    /// Bytes written by the application and not yet sent (`tcpi_notsent_bytes`); `None`
    /// on kernels older than 4.6, which do not report it.
    pub notsent_bytes: Option<u32>,
    /// Time since data was last sent (`tcpi_last_data_sent`).
    pub last_data_sent: Duration,
    /// Time since data was last received (`tcpi_last_data_recv`).
    pub last_data_recv: Duration,
    /// Time since an acknowledgement was last received (`tcpi_last_ack_recv`): on an idle
    /// connection with keepalive, the last answered probe.
    pub last_ack_recv: Duration,
}

impl Inspection {
    /// True while data sits unacknowledged and is being retransmitted: the peer, or the
    /// path to it, has stopped acknowledging.
    ///
    /// It turns true at the first retransmission timeout (200 ms at the least, about
    /// `rtt + 4 × rtt_var` in general) after the peer falls silent under load, and false
    /// again when an acknowledgement arrives. A single loss on a healthy path makes it
    /// true briefly too; act on it when it persists, or when it persists past a deadline
    /// of your own.
    ///
    /// ```
    /// use std::net::{TcpListener, TcpStream};
    /// use connhealth::inspect;
    ///
    /// let listener = TcpListener::bind("127.0.0.1:0")?;
    /// let conn = TcpStream::connect(listener.local_addr()?)?;
    /// # #[cfg(target_os = "linux")]
    /// assert!(!inspect(&conn)?.stalled());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stalled(&self) -> bool {
        self.unacked > 0 && (self.retransmits > 0 || self.backoff > 0)
    }
}

/// A TCP state, in the names of RFC 9293 (and Linux's).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// ESTABLISHED: open, data flows both ways.
    Established,
    /// SYN-SENT: connecting, waiting for the SYN-ACK.
    SynSent,
    /// SYN-RECEIVED: the SYN-ACK is sent, waiting for the final ACK.
    SynReceived,
    /// FIN-WAIT-1: we closed; our FIN is not yet acknowledged.
    FinWait1,
    /// FIN-WAIT-2: we closed and the peer acknowledged; waiting for its FIN.
    FinWait2,
    /// TIME-WAIT: both sides closed; waiting out old segments.
    TimeWait,
    /// CLOSED: no connection (after a reset or a timeout, or never connected).
    Closed,
    /// CLOSE-WAIT: the peer closed (sent a FIN); we have not yet.
    CloseWait,
    /// LAST-ACK: both closed, the peer first; waiting for the ACK of our FIN.
    LastAck,
    /// LISTEN: a listening socket.
    Listen,
    /// CLOSING: both sides closed at once; waiting for the ACK of our FIN.
    Closing,
    /// A state this version does not know, as the kernel's number.
    Other(u8),
}

impl TcpState {
    /// Linux's `TCP_ESTABLISHED` (1) ... `TCP_CLOSING` (11), from include/net/tcp_states.h.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    pub(crate) fn from_linux(state: u8) -> TcpState {
        match state {
            1 => TcpState::Established,
            2 => TcpState::SynSent,
            3 => TcpState::SynReceived,
            4 => TcpState::FinWait1,
            5 => TcpState::FinWait2,
            6 => TcpState::TimeWait,
            7 => TcpState::Closed,
            8 => TcpState::CloseWait,
            9 => TcpState::LastAck,
            10 => TcpState::Listen,
            11 => TcpState::Closing,
            other => TcpState::Other(other),
        }
    }
}

impl std::fmt::Display for TcpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            TcpState::Established => "ESTABLISHED",
            TcpState::SynSent => "SYN-SENT",
            TcpState::SynReceived => "SYN-RECEIVED",
            TcpState::FinWait1 => "FIN-WAIT-1",
            TcpState::FinWait2 => "FIN-WAIT-2",
            TcpState::TimeWait => "TIME-WAIT",
            TcpState::Closed => "CLOSED",
            TcpState::CloseWait => "CLOSE-WAIT",
            TcpState::LastAck => "LAST-ACK",
            TcpState::Listen => "LISTEN",
            TcpState::Closing => "CLOSING",
            TcpState::Other(n) => return write!(f, "state {n}"),
        };
        f.write_str(name)
    }
}

/// Reads what the kernel knows about a TCP connection, in one `getsockopt(TCP_INFO)`:
/// state, RTT, retransmissions, unacknowledged and unsent data, and the time since data
/// last moved each way. No traffic, no lock a reader holds, about the cost of the
/// syscall itself.
///
/// Use it to diagnose, and to act early: [`Inspection::stalled`] warns while the peer
/// is silent under load, long before [`DeadPeer`](crate::DeadPeer)'s bound fails the
/// connection.
///
/// Linux, and Windows 10 1703 and later through `SIO_TCP_INFO`. Windows reports less:
/// `rtt_var`, `rto`, `backoff`, `probes`, `lost` and the `last_*` times read zero and
/// `notsent_bytes` is `None`; `unacked` and `total_retransmits` are its byte counts in
/// segments of MSS bytes; and `retransmits` counts retransmission timeouts over the
/// connection's life, so [`Inspection::stalled`] is a weaker signal there. Elsewhere, and
/// where Windows lacks `SIO_TCP_INFO` (Wine among them), it returns an error of kind
/// `Unsupported`. On a socket that is not TCP it returns the kernel's error.
///
/// ```
/// use std::net::{TcpListener, TcpStream};
/// use connhealth::{inspect, TcpState};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let conn = TcpStream::connect(listener.local_addr()?)?;
/// # #[cfg(target_os = "linux")] {
/// let info = inspect(&conn)?;
/// assert_eq!(info.state, TcpState::Established);
/// assert_eq!(info.unacked, 0);
/// println!("rtt {:?} ± {:?}, last data received {:?} ago", info.rtt, info.rtt_var, info.last_data_recv);
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn inspect<S: sys::AsSocket + ?Sized>(conn: &S) -> io::Result<Inspection> {
    sys::tcp_info::inspect(sys::borrow(conn))
}
