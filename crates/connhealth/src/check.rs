//! The liveness check of an established connection: [`check`], [`Status`], [`Closed`].

use std::io;

use crate::sys;

/// What the kernel says about a connection, as seen by [`check`].
///
/// `Open` and `Readable` both mean the connection is usable; they differ only in
/// whether bytes are waiting. `Closed` means it is not, and says why.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Established, nothing waiting to be read, no close or error pending.
    Open,
    /// Established, and bytes (or a datagram, possibly of zero length) are waiting to be
    /// read. The check consumed none of them.
    Readable,
    /// The connection is gone, for the reason given. Data may still be queued ahead of the
    /// close: it can be read, but nothing more will arrive and nothing sent will be read.
    Closed(Closed),
    /// The kernel could not answer right now (`EINTR`, `ENOMEM`, `ENOBUFS`, ...). The
    /// connection may be fine; ask again, or treat it as suspect.
    Unknown,
}

impl Status {
    /// True for [`Status::Closed`], whatever the reason.
    ///
    /// ```
    /// use connhealth::{Closed, Status};
    /// assert!(Status::Closed(Closed::Reset).is_closed());
    /// assert!(!Status::Readable.is_closed());
    /// assert!(!Status::Unknown.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        matches!(self, Status::Closed(_))
    }

    /// True for [`Status::Open`] and [`Status::Readable`]: the connection can be used.
    pub fn is_usable(&self) -> bool {
        matches!(self, Status::Open | Status::Readable)
    }
}

/// Why a connection is [`Status::Closed`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Closed {
    /// The peer closed its side (a FIN, or `shutdown(SHUT_WR)`), or the connection is
    /// fully closed with no error left to report.
    Eof,
    /// The peer reset the connection (an RST: `ECONNRESET`, or `EPIPE` when it arrived
    /// after the peer's FIN).
    Reset,
    /// Retransmissions or keepalive probes went unanswered until TCP_USER_TIMEOUT,
    /// keepalive or `tcp_retries2` gave up (`ETIMEDOUT`): the peer vanished.
    TimedOut,
    /// The peer refused: for connected UDP, an ICMP port unreachable (`ECONNREFUSED`).
    Refused,
    /// The local stack aborted the connection, for example `ss -K` (`ECONNABORTED`).
    Aborted,
    /// Another error the kernel reported on the socket, as a raw OS error code
    /// (`EHOSTUNREACH` after an ICMP host unreachable, for example).
    Other(i32),
}

impl Closed {
    /// Classifies a socket error (`SO_ERROR`, or an errno from a socket call) by the
    /// kind the standard library gives it, so that the mapping reads the same on every
    /// platform.
    pub(crate) fn from_os_error(code: i32) -> Closed {
        match io::Error::from_raw_os_error(code).kind() {
            io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe => Closed::Reset,
            io::ErrorKind::TimedOut => Closed::TimedOut,
            io::ErrorKind::ConnectionRefused => Closed::Refused,
            io::ErrorKind::ConnectionAborted => Closed::Aborted,
            _ => Closed::Other(code),
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Open => f.write_str("open"),
            Status::Readable => f.write_str("open, data waiting"),
            Status::Closed(why) => write!(f, "closed ({why})"),
            Status::Unknown => f.write_str("unknown"),
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Eof => f.write_str("peer closed"),
            Closed::Reset => f.write_str("reset by peer"),
            Closed::TimedOut => f.write_str("timed out"),
            Closed::Refused => f.write_str("refused"),
            Closed::Aborted => f.write_str("aborted locally"),
            Closed::Other(code) => write!(f, "{}", io::Error::from_raw_os_error(*code)),
        }
    }
}

/// Asks the kernel whether an established connection is still open.
///
/// One `poll(2)` with a zero timeout on the open path: no traffic is sent, no byte is
/// consumed, no lock is taken that a reader of the same socket could hold, and the call
/// never blocks. It works on anything that exposes its descriptor: std and tokio
/// `TcpStream`, `UdpSocket` and `UnixStream`, and the transport under a TLS stream
/// (`stream.get_ref()`).
///
/// What it sees that a `recv(MSG_PEEK)` check (Go's conncheck) does not:
///
/// * **A close behind queued bytes.** When the peer sent data and then a FIN, a peek
///   returns the data and reports the connection open. On Linux the check sees the FIN
///   through `POLLRDHUP` and reports `Closed(Eof)`. A TLS peer's graceful close
///   (close_notify, then FIN) is the common case.
/// * **Errors without a read.** A reset, a timeout or a local abort is reported as
///   `Closed(Reset)`, `Closed(TimedOut)` or `Closed(Aborted)`.
///
/// The kernel reports a socket error once: the check that first sees a reset takes the
/// error and says `Closed(Reset)`; later checks of the same socket still say closed, as
/// `Closed(Eof)`, because the reason is no longer there to read. The same holds when the
/// application's own `read` took the error first. The other way round, once a check has
/// taken it, the application's next `read` returns 0 (end of stream), not
/// `ConnectionReset`: a protocol that reads a reply up to the end of the stream must not
/// check a connection in the middle of a reply, or must trust the check's `Closed`. A
/// pool, which checks idle connections only, is not concerned. An error that does not
/// close a TCP connection (an ICMP error it retries past, with `IP_RECVERR`, or an entry
/// in the error queue) is not taken, and the connection is reported open.
///
/// UDP has no connection to close: a connected UDP socket's ICMP port-unreachable is
/// reported once, as `Closed(Refused)`, and taken, so the next check says `Open` again and
/// the application's `recv` does not see it.
///
/// It does not rely on tokio's cached readiness, which would call a dead socket alive
/// until the next event; it asks the kernel every time.
///
/// On Windows it takes any `AsSocket` and makes one `WSAPoll` with a zero timeout; only
/// when that says readable does it ask how many bytes are queued (`FIONREAD`), which never
/// waits. A reset is `Closed(Reset)` and an abort `Closed(Aborted)`, as on Linux; `Other`
/// carries the `WSAE*` code. (Under Wine, which the tests run on, a reset reads as
/// `Closed(Eof)` and a FIN behind unread bytes as `Readable`: see the Windows section of
/// `docs/platforms.md`.)
///
/// A peer that vanished without a FIN or RST (power loss, a NAT that forgot the flow)
/// looks open until TCP gives up: pair the check with [`DeadPeer`](crate::DeadPeer) to
/// bound that time.
///
/// # Example
///
/// ```
/// use std::io::Write;
/// use std::net::{TcpListener, TcpStream};
/// use connhealth::{check, Closed, Status};
///
/// let listener = TcpListener::bind("127.0.0.1:0")?;
/// let conn = TcpStream::connect(listener.local_addr()?)?;
/// let (mut peer, _) = listener.accept()?;
/// assert_eq!(check(&conn), Status::Open);
///
/// peer.write_all(b"hello")?;
/// # std::thread::sleep(std::time::Duration::from_millis(20));
/// assert_eq!(check(&conn), Status::Readable);
///
/// drop(peer); // FIN, behind the unread "hello"
/// # std::thread::sleep(std::time::Duration::from_millis(20));
/// # #[cfg(target_os = "linux")] // the portable Unix path sees the bytes first
/// assert_eq!(check(&conn), Status::Closed(Closed::Eof));
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn check<S: sys::AsSocket + ?Sized>(conn: &S) -> Status {
    sys::check::status(sys::borrow(conn))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn os_errors_map_to_the_field_names() {
        assert_eq!(Closed::from_os_error(libc::ECONNRESET), Closed::Reset);
        assert_eq!(Closed::from_os_error(libc::EPIPE), Closed::Reset);
        assert_eq!(Closed::from_os_error(libc::ETIMEDOUT), Closed::TimedOut);
        assert_eq!(Closed::from_os_error(libc::ECONNREFUSED), Closed::Refused);
        assert_eq!(Closed::from_os_error(libc::ECONNABORTED), Closed::Aborted);
        assert_eq!(
            Closed::from_os_error(libc::EHOSTUNREACH),
            Closed::Other(libc::EHOSTUNREACH)
        );
    }

    #[cfg(windows)]
    #[test]
    fn winsock_errors_map_to_the_field_names() {
        use windows_sys::Win32::Networking::WinSock;
        assert_eq!(Closed::from_os_error(WinSock::WSAECONNRESET), Closed::Reset);
        assert_eq!(
            Closed::from_os_error(WinSock::WSAETIMEDOUT),
            Closed::TimedOut
        );
        assert_eq!(
            Closed::from_os_error(WinSock::WSAECONNREFUSED),
            Closed::Refused
        );
        assert_eq!(
            Closed::from_os_error(WinSock::WSAECONNABORTED),
            Closed::Aborted
        );
        assert_eq!(
            Closed::from_os_error(WinSock::WSAEHOSTUNREACH),
            Closed::Other(WinSock::WSAEHOSTUNREACH)
        );
    }

    #[test]
    fn display_says_what_happened() {
        assert_eq!(
            Status::Closed(Closed::Reset).to_string(),
            "closed (reset by peer)"
        );
        assert_eq!(Status::Readable.to_string(), "open, data waiting");
    }
}
