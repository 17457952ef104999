//! The calls behind [`crate::check`] on Windows: one `WSAPoll` with a zero timeout, and,
//! only when it says readable, one `ioctlsocket(FIONREAD)` to tell bytes from an EOF.
//!
//! Go's conncheck sets a 1 ms `SO_RCVTIMEO` and peeks, so it waits out the millisecond
//! (about 1.5 ms a call). A peek is no better here: Windows has no `MSG_DONTWAIT`, and on
//! a blocking socket (std's, by default) a peek blocks until data comes when another
//! reader drained the bytes between the poll and the peek. `FIONREAD` never waits: it
//! counts the bytes queued, and readable with none queued is the end of the stream.
//!
//! `WSAPoll` reports a reset or aborted connection as `POLLHUP` (with `POLLERR` when an
//! error is pending). The error is taken with `SO_ERROR` when there is one; when there is
//! none, a zero-byte `recv` on the disconnected socket (which cannot block: the
//! connection is over) returns the reason, `WSAECONNRESET` or `WSAECONNABORTED`.
//!
//! A connected UDP socket learns of an ICMP port unreachable as a `WSAECONNRESET` waiting
//! for the next `recv`: the check peeks for it and reports `Closed(Refused)`, once, as on
//! Linux.

use std::io;

use socket2::SockRef;
use windows_sys::Win32::Networking::WinSock::{
    self, FIONREAD, POLLERR, POLLHUP, POLLNVAL, POLLRDNORM, SOCKET_ERROR, WSAPOLLFD,
};

use super::{last_error, raw, BorrowedSocket};
use crate::{Closed, Status};

pub(crate) fn status(sock: BorrowedSocket<'_>) -> Status {
    let mut pollfd = WSAPOLLFD {
        fd: raw(sock),
        events: POLLRDNORM,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, initialised WSAPOLLFD that outlives the call, the
    // count is 1, and a zero timeout means the call never waits. The socket is borrowed,
    // so it stays open for the call.
    let ready = unsafe { WinSock::WSAPoll(&mut pollfd, 1, 0) };
    match ready {
        0 => Status::Open,
        // WSAENOBUFS, WSAENETDOWN, or a handle that is not a socket: no answer.
        SOCKET_ERROR => Status::Unknown,
        _ => classify(sock, pollfd.revents),
    }
}

fn classify(sock: BorrowedSocket<'_>, revents: i16) -> Status {
    if revents & POLLNVAL != 0 {
        return Status::Unknown;
    }
    if revents & (POLLERR | POLLHUP) != 0 {
        match SockRef::from(&sock).take_error() {
            Ok(Some(err)) => return closed_by(&err),
            Ok(None) => {}
            Err(_) => return Status::Unknown,
        }
    }
    if revents & POLLHUP != 0 {
        return disconnected(sock);
    }
    if revents & POLLRDNORM != 0 {
        return readable(sock);
    }
    Status::Open
}

/// `POLLHUP` without a pending error: the connection is over, so a zero-length `recv`
/// returns at once, with the reason (`WSAECONNRESET`, `WSAECONNABORTED`) or 0 for a
/// graceful close.
fn disconnected(sock: BorrowedSocket<'_>) -> Status {
    match SockRef::from(&sock).recv(&mut []) {
        Ok(_) => Status::Closed(Closed::Eof),
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Status::Closed(Closed::Eof),
        Err(err) => closed_by(&err),
    }
}

/// Readable means bytes, a datagram (possibly of zero length), or the end of the
/// stream. `FIONREAD` counts what is queued without consuming or waiting.
fn readable(sock: BorrowedSocket<'_>) -> Status {
    let mut queued: u32 = 0;
    // SAFETY: FIONREAD writes one u32 through the pointer, which is live for the call.
    let rc = unsafe { WinSock::ioctlsocket(raw(sock), FIONREAD, &mut queued) };
    if rc == SOCKET_ERROR {
        return closed_by(&last_error());
    }
    if queued > 0 {
        return Status::Readable;
    }
    match SockRef::from(&sock).r#type() {
        Ok(socket2::Type::STREAM) => Status::Closed(Closed::Eof),
        Ok(_) => datagram(sock),
        Err(_) => Status::Unknown,
    }
}

/// A datagram socket readable with nothing queued holds a zero-length datagram (not an
/// EOF), or the report of an ICMP port unreachable, which Windows hands to the next
/// `recv` as `WSAECONNRESET`. A one-byte peek tells them apart without waiting (something
/// is queued), and takes the report as `recv` would: once, as Linux does.
fn datagram(sock: BorrowedSocket<'_>) -> Status {
    let mut byte = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match SockRef::from(&sock).peek(&mut byte) {
        Ok(_) => Status::Readable,
        // The datagram was longer than the byte: it is there.
        Err(err) if err.raw_os_error() == Some(WinSock::WSAEMSGSIZE) => Status::Readable,
        Err(err) if err.raw_os_error() == Some(WinSock::WSAECONNRESET) => {
            Status::Closed(Closed::Refused)
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Status::Open,
        Err(err) => closed_by(&err),
    }
}

/// A socket error closes the connection, except the few that only say Winsock could not
/// answer this time, or that the handle is no connected socket.
fn closed_by(err: &io::Error) -> Status {
    match err.raw_os_error() {
        Some(
            WinSock::WSAEINTR
            | WinSock::WSAENOBUFS
            | WinSock::WSAEWOULDBLOCK
            | WinSock::WSAEINPROGRESS
            | WinSock::WSAENOTSOCK
            | WinSock::WSAEINVAL
            | WinSock::WSAENOTCONN
            | WinSock::WSANOTINITIALISED,
        )
        | None => Status::Unknown,
        Some(code) => Status::Closed(Closed::from_os_error(code)),
    }
}
