//! Closing a check's connection the way a server does not log: a FIN, never an RST.
//! `send-expect`, `tls` (under a failed handshake) and `http` (a connection not kept)
//! close through here.

use std::io::Read;
use std::net::Shutdown;

use socket2::SockRef;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// The most bytes read and thrown away while waiting for the peer's FIN at close. A peer
/// that sends more is still sending: the close then resets the connection, the only
/// way to stop it.
pub const DISCARD_CAP: usize = 64 * 1024;

/// Closes `stream` so that the peer sees FIN, never RST: sends a FIN, reads and discards
/// until the peer's FIN (until `deadline`, at most [`DISCARD_CAP`] bytes), then reads
/// whatever has already arrived. The caller drops the stream afterwards.
pub(crate) async fn close_gracefully(stream: &mut TcpStream, deadline: Instant) {
    let _ = SockRef::from(&*stream).shutdown(Shutdown::Write);
    let mut scratch = [0u8; 2048];
    let mut discarded = 0;
    while discarded < DISCARD_CAP {
        match timeout_at(deadline, stream.read(&mut scratch)).await {
            // The peer's FIN, or its reset: nothing can be left unread.
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => discarded += n,
            Err(_) => break,
        }
    }
    drain_now(stream);
}

/// The part of a close that never waits: a FIN (if none was sent yet), then a
/// non-blocking read of what has already arrived, so that bytes queued at this moment
/// do not turn the close into an RST.
pub(crate) fn close_now(stream: &TcpStream) {
    let _ = SockRef::from(stream).shutdown(Shutdown::Write);
    drain_now(stream);
}

/// Reads and discards what the kernel holds for `stream` now, at most [`DISCARD_CAP`]
/// bytes. It asks the kernel directly (the socket is non-blocking): tokio's cached
/// readiness may not know yet of bytes that have just arrived.
fn drain_now(stream: &TcpStream) {
    let socket = SockRef::from(stream);
    let mut scratch = [0u8; 2048];
    let mut discarded = 0;
    while discarded < DISCARD_CAP {
        match (&*socket).read(&mut scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => discarded += n,
        }
    }
}
