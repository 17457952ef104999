//! The probe socket on Windows: opened, connected, and its errors classified.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};
use windows_sys::Win32::Networking::WinSock;

use crate::sys::Failure;

pub(crate) fn classify(err: &io::Error) -> Failure {
    match err.raw_os_error() {
        Some(WinSock::WSAECONNREFUSED) => Failure::Refused,
        Some(WinSock::WSAETIMEDOUT) => Failure::TimedOut,
        Some(
            WinSock::WSAENETUNREACH
            | WinSock::WSAEHOSTUNREACH
            | WinSock::WSAENETDOWN
            | WinSock::WSAEHOSTDOWN,
        ) => Failure::Unreachable,
        // No free local port for this destination (Windows says either), or no source
        // address for it.
        Some(WinSock::WSAEADDRNOTAVAIL | WinSock::WSAEADDRINUSE) => Failure::DestinationExhausted,
        // Out of socket handles, or of buffer space (also Windows' word for a full
        // ephemeral port range at connect).
        Some(WinSock::WSAEMFILE | WinSock::WSAENOBUFS) => Failure::Exhausted,
        _ => Failure::Other,
    }
}

/// Opens a nonblocking TCP socket for a probe to `addr` and starts the connect. `Ok`
/// means the SYN is on its way (or, rarely, the connect already completed): register the
/// socket for writability. `half_open` changes nothing here: Windows has no
/// `TCP_QUICKACK` (see the module docs).
pub(crate) fn start_connect(addr: &SocketAddr, _half_open: bool) -> io::Result<Socket> {
    // Not inherited by child processes: socket2 opens it with WSA_FLAG_NO_HANDLE_INHERIT.
    let socket = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    // A zero linger makes closesocket() send an RST and free the socket at once: no FIN
    // exchange, no TIME_WAIT left behind.
    socket.set_linger(Some(Duration::ZERO))?;
    match socket.connect(&SockAddr::from(*addr)) {
        Ok(()) => Ok(socket),
        Err(err) if err.raw_os_error() == Some(WinSock::WSAEWOULDBLOCK) => Ok(socket),
        Err(err) => Err(err),
    }
}
