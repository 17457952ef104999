//! The syscalls behind [`crate::check`].
//!
//! Linux answers the whole question with one `poll(2)`: `POLLRDHUP` shows a FIN even when
//! bytes are queued ahead of it, `POLLERR` shows a pending error without consuming it, and
//! `tcp_poll` reads the socket state without taking the socket lock, so a thread blocked in
//! `read` on the same socket cannot hold the check up. Elsewhere `POLLRDHUP` does not
//! exist; the portable path peeks one byte when `poll` says readable, to tell data from an
//! EOF. There a close behind queued bytes looks `Readable` until the bytes are read.
//!
//! `--cfg connhealth_portable` forces the portable path on Linux, so that CI runs the
//! tests against it too (`.ci/run`).

use std::io;
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd};

use socket2::SockRef;

use crate::{Closed, Status};

#[cfg(all(target_os = "linux", not(connhealth_portable)))]
const EVENTS: libc::c_short = libc::POLLIN | libc::POLLRDHUP;
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
const EVENTS: libc::c_short = libc::POLLIN;

pub(crate) fn status(fd: BorrowedFd<'_>) -> Status {
    let mut pollfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: EVENTS,
        revents: 0,
    };
    // SAFETY: `pollfd` is one valid, initialised `pollfd` that outlives the call, nfds is 1,
    // and a zero timeout means the call never sleeps. The descriptor is borrowed, so it
    // stays open for the duration.
    let ready = unsafe { libc::poll(&mut pollfd, 1, 0) };
    match ready {
        0 => Status::Open,
        // EINTR, ENOMEM (the kernel could not allocate its poll table), EFAULT: no answer.
        n if n < 0 => Status::Unknown,
        _ => classify(fd, pollfd.revents),
    }
}

fn classify(fd: BorrowedFd<'_>, revents: libc::c_short) -> Status {
    if revents & libc::POLLNVAL != 0 {
        return Status::Unknown;
    }
    if revents & libc::POLLERR != 0 && !error_leaves_it_open(fd, revents) {
        // Taking the error consumes it: the kernel reports each socket error once. A
        // reader on another thread may have taken it between poll and here; then fall
        // through to what the state still shows.
        match SockRef::from(&fd).take_error() {
            Ok(Some(err)) => return closed_by(&err),
            Ok(None) => {}
            Err(_) => return Status::Unknown,
        }
    }
    if revents & (libc::POLLHUP | RDHUP) != 0 {
        return Status::Closed(Closed::Eof);
    }
    if revents & libc::POLLIN != 0 {
        return readable(fd);
    }
    Status::Open
}

/// True when `POLLERR` comes without `POLLHUP` on a stream socket. An error that ends a
/// TCP connection (a reset, a timeout, an abort) also closes the socket, and poll then
/// reports `POLLHUP` too. Alone, `POLLERR` is an ICMP error TCP is still retrying past
/// (made a socket error by `IP_RECVERR`), or an entry in the error queue (timestamps,
/// zero-copy completions): the connection lives, and taking the error would both call it
/// closed and take from the application a report that is its own.
fn error_leaves_it_open(fd: BorrowedFd<'_>, revents: libc::c_short) -> bool {
    revents & libc::POLLHUP == 0 && matches!(SockRef::from(&fd).r#type(), Ok(socket2::Type::STREAM))
}

#[cfg(all(target_os = "linux", not(connhealth_portable)))]
const RDHUP: libc::c_short = libc::POLLRDHUP;
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
const RDHUP: libc::c_short = 0;

/// Linux: without `POLLRDHUP`, `POLLIN` can only mean data (or a datagram, possibly of
/// zero length).
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
fn readable(_fd: BorrowedFd<'_>) -> Status {
    Status::Readable
}

/// Portable: `POLLIN` means data or EOF; a one-byte peek tells them apart. A zero-length
/// read on a datagram socket is an empty datagram, not an EOF.
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
fn readable(fd: BorrowedFd<'_>) -> Status {
    let sock = SockRef::from(&fd);
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Ok(0) if matches!(sock.r#type(), Ok(socket2::Type::STREAM)) => Status::Closed(Closed::Eof),
        Ok(_) => Status::Readable,
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => Status::Open,
        Err(err) => closed_by(&err),
    }
}

/// A socket error closes the connection, except the few that only say the kernel could
/// not answer this time.
fn closed_by(err: &io::Error) -> Status {
    match err.raw_os_error() {
        Some(libc::EINTR | libc::ENOMEM | libc::ENOBUFS | libc::EAGAIN) | None => Status::Unknown,
        Some(code) => Status::Closed(Closed::from_os_error(code)),
    }
}
