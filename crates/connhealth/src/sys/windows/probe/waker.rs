//! The engine's waker on Windows: a UDP socket on loopback, connected to its own address.
//! `WSAPoll` watches sockets only (no pipes, no events), so a wake is a one-byte datagram
//! the socket sends to itself; the poller sees it readable.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::windows::io::AsSocket;

use super::super::BorrowedSocket;

/// Wakes the engine thread from another thread.
#[derive(Debug)]
pub(crate) struct LoopbackWaker {
    socket: UdpSocket,
}

impl LoopbackWaker {
    pub(crate) fn new() -> io::Result<LoopbackWaker> {
        let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?;
        socket.connect(socket.local_addr()?)?;
        socket.set_nonblocking(true)?;
        Ok(LoopbackWaker { socket })
    }

    /// The socket the poller watches for readability.
    pub(crate) fn readable(&self) -> BorrowedSocket<'_> {
        self.socket.as_socket()
    }

    pub(crate) fn wake(&self) {
        // A full receive buffer (WSAEWOULDBLOCK) already holds a pending wake.
        let _ = self.socket.send(&[1]);
    }

    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 64];
        // Until nothing is queued (WSAEWOULDBLOCK) or it fails.
        while self.socket.recv(&mut buf).is_ok() {}
    }
}
