//! The socket options behind [`crate::DeadPeer`] on Windows: keepalive through
//! `SIO_KEEPALIVE_VALS` (idle and interval, in milliseconds) and `TCP_KEEPCNT` (Windows 10
//! 1703 and later), set together by socket2, and `TCP_MAXRT` as the user timeout.
//!
//! `TCP_MAXRT` bounds how long data may go unacknowledged, like Linux's
//! `TCP_USER_TIMEOUT`, but in whole seconds: the plan's user timeout is rounded *down* to
//! a whole second (1.5 s becomes 1 s), so that the bound still holds. Windows does not
//! consult it for keepalive: an idle connection gives up after `TCP_KEEPCNT` unanswered
//! probes, which the plan sets to agree with the same window. Reading the settings back
//! needs `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and `TCP_KEEPCNT` as `getsockopt` options
//! (Windows 10 1709 and later).

use std::io;
use std::mem;
use std::time::Duration;

use socket2::SockRef;
use windows_sys::Win32::Networking::WinSock::{
    self, IPPROTO_TCP, SOCKET_ERROR, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_MAXRT,
};

use super::{last_error, raw, BorrowedSocket};
use crate::DeadPeerSettings;

/// Windows has `TCP_MAXRT`, a bound on unacknowledged data.
pub(crate) const HAS_USER_TIMEOUT: bool = true;

/// The settings as Windows applies them: `TCP_MAXRT` counts whole seconds, so the user
/// timeout is rounded down (never below one second, which would mean "the default").
pub(crate) fn as_applied(mut settings: DeadPeerSettings) -> DeadPeerSettings {
    settings.user_timeout = settings
        .user_timeout
        .map(|t| Duration::from_secs(t.as_secs().max(1)));
    settings
}

pub(crate) fn apply(sock: BorrowedSocket<'_>, settings: &DeadPeerSettings) -> io::Result<()> {
    if let Some(user_timeout) = settings.user_timeout {
        // Whole seconds already (as_applied).
        let secs = user_timeout.as_secs().clamp(1, i32::MAX as u64) as i32;
        set_tcp_int(sock, TCP_MAXRT, secs).map_err(|err| context(err, "TCP_MAXRT"))?;
    }
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(settings.idle)
        .with_interval(settings.interval)
        .with_retries(settings.count);
    let sock = SockRef::from(&sock);
    sock.set_keepalive(true)
        .map_err(|err| context(err, "SO_KEEPALIVE"))?;
    sock.set_tcp_keepalive(&keepalive)
        .map_err(|err| context(err, "SIO_KEEPALIVE_VALS and TCP_KEEPCNT"))
}

/// Names the option Winsock refused, keeping the error's kind and text.
fn context(err: io::Error, option: &str) -> io::Error {
    io::Error::new(err.kind(), format!("setting {option} failed: {err}"))
}

pub(crate) fn read(sock: BorrowedSocket<'_>) -> io::Result<Option<DeadPeerSettings>> {
    let tcp = SockRef::from(&sock);
    if !tcp.keepalive()? {
        return Ok(None);
    }
    // TCP_MAXRT reads -1 or 0 when it was never set.
    let user_timeout = Some(tcp_int(sock, TCP_MAXRT)?)
        .filter(|secs| *secs > 0)
        .map(seconds);
    Ok(Some(DeadPeerSettings {
        idle: seconds(tcp_int(sock, TCP_KEEPIDLE)?),
        interval: seconds(tcp_int(sock, TCP_KEEPINTVL)?),
        count: tcp.tcp_keepalive_retries()?,
        user_timeout,
    }))
}

/// Windows counts these options in whole seconds.
fn seconds(secs: i32) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn set_tcp_int(sock: BorrowedSocket<'_>, option: i32, value: i32) -> io::Result<()> {
    // SAFETY: the option value is a live i32 of the length given, read during the call;
    // the socket is borrowed, so it stays open.
    let rc = unsafe {
        WinSock::setsockopt(
            raw(sock),
            IPPROTO_TCP,
            option,
            (&value as *const i32).cast(),
            mem::size_of::<i32>() as i32,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(())
}

fn tcp_int(sock: BorrowedSocket<'_>, option: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = mem::size_of::<i32>() as i32;
    // SAFETY: `value` is a live, writable i32 and `len` says its size; Winsock writes at
    // most `len` bytes and stores the count in `len`.
    let rc = unsafe {
        WinSock::getsockopt(
            raw(sock),
            IPPROTO_TCP,
            option,
            (&mut value as *mut i32).cast(),
            &mut len,
        )
    };
    if rc == SOCKET_ERROR {
        return Err(last_error());
    }
    Ok(value)
}
