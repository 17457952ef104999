//! The probe socket: opened, made half-open, connected, and its errors classified.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

use crate::sys::Failure;

pub(crate) fn classify(err: &io::Error) -> Failure {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => Failure::Refused,
        Some(libc::ETIMEDOUT) => Failure::TimedOut,
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::EHOSTDOWN) => {
            Failure::Unreachable
        }
        // EADDRNOTAVAIL: no free local port for this destination, or no source address
        // for it (EAGAIN for the ports on some systems).
        Some(libc::EADDRNOTAVAIL | libc::EAGAIN) => Failure::DestinationExhausted,
        // EMFILE/ENFILE: out of descriptors. ENOBUFS/ENOMEM: socket buffers.
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => Failure::Exhausted,
        _ => Failure::Other,
    }
}

/// Opens a nonblocking, close-on-exec TCP socket for a probe to `addr`, sets the options
/// that make it half-open (or not), and starts the connect. `Ok` means the SYN is on its
/// way (or, rarely, the connect already completed): register the socket for writability.
pub(crate) fn start_connect(addr: &SocketAddr, half_open: bool) -> io::Result<Socket> {
    let domain = Domain::for_address(*addr);
    #[cfg(target_os = "linux")]
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), None)?;
    #[cfg(not(target_os = "linux"))]
    let socket = {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket
    };
    set_half_open(&socket, half_open)?;
    // A zero linger makes close() send an RST and free the socket at once: no FIN
    // exchange, no TIME_WAIT left behind, in either mode.
    socket.set_linger(Some(Duration::ZERO))?;
    match socket.connect(&SockAddr::from(*addr)) {
        Ok(()) => Ok(socket),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(err) => Err(err),
    }
}

/// Linux: TCP_QUICKACK off puts the socket in delayed-ACK ("pingpong") mode before the
/// SYN leaves, so the kernel does not ACK the SYN-ACK at once; it would do so only after
/// the delayed-ACK timer (~40-200 ms). The engine closes the socket long before that, and
/// the server's half-finished handshake is reset, never accepted. (This is a socket
/// option, not a readiness backend: `connhealth_portable` keeps it.)
#[cfg(target_os = "linux")]
fn set_half_open(socket: &Socket, half_open: bool) -> io::Result<()> {
    if half_open {
        socket.set_tcp_quickack(false)?;
    }
    Ok(())
}

/// Elsewhere there is no TCP_QUICKACK: the kernel ACKs the SYN-ACK immediately, the
/// handshake completes, and the zero-linger close resets it. Half-open is Connect here.
#[cfg(not(target_os = "linux"))]
fn set_half_open(_socket: &Socket, _half_open: bool) -> io::Result<()> {
    Ok(())
}
