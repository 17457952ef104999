//! The socket options behind [`crate::DeadPeer`]: keepalive idle, interval and count, and
//! `TCP_USER_TIMEOUT`, all set through socket2.
//!
//! Linux (and Android) have all four. macOS, iOS and the BSDs have the three keepalive
//! options but no `TCP_USER_TIMEOUT`: there unacknowledged data is retried for as long as
//! the system's retransmission limit says. OpenBSD and the rest cannot tune keepalive per
//! socket at all.

use std::io;
use std::os::fd::BorrowedFd;

use crate::DeadPeerSettings;

/// Whether this platform has `TCP_USER_TIMEOUT`, the only bound on unacknowledged data.
pub(crate) const HAS_USER_TIMEOUT: bool = cfg!(any(target_os = "linux", target_os = "android"));

/// The settings as this platform applies them: exactly as planned.
pub(crate) fn as_applied(settings: DeadPeerSettings) -> DeadPeerSettings {
    settings
}

#[cfg(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "illumos",
    target_os = "ios",
    target_os = "linux",
    target_os = "macos",
    target_os = "netbsd",
    target_os = "tvos",
    target_os = "visionos",
    target_os = "watchos",
))]
mod tunable {
    use socket2::SockRef;

    use super::*;

    pub(crate) fn apply(fd: BorrowedFd<'_>, settings: &DeadPeerSettings) -> io::Result<()> {
        let sock = SockRef::from(&fd);
        // The user timeout goes first: setting the keepalive options arms the keepalive
        // timer, and from then on TCP_USER_TIMEOUT is what decides when it gives up.
        #[cfg(any(target_os = "linux", target_os = "android"))]
        sock.set_tcp_user_timeout(settings.user_timeout)?;
        let keepalive = socket2::TcpKeepalive::new()
            .with_time(settings.idle)
            .with_interval(settings.interval)
            .with_retries(settings.count);
        sock.set_tcp_keepalive(&keepalive)
    }

    pub(crate) fn read(fd: BorrowedFd<'_>) -> io::Result<Option<DeadPeerSettings>> {
        let sock = SockRef::from(&fd);
        if !sock.keepalive()? {
            return Ok(None);
        }
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let user_timeout = sock.tcp_user_timeout()?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let user_timeout = None;
        Ok(Some(DeadPeerSettings {
            idle: sock.tcp_keepalive_time()?,
            interval: sock.tcp_keepalive_interval()?,
            count: sock.tcp_keepalive_retries()?,
            user_timeout,
        }))
    }
}

#[cfg(not(any(
    target_os = "android",
    target_os = "dragonfly",
    target_os = "freebsd",
    target_os = "illumos",
    target_os = "ios",
    target_os = "linux",
    target_os = "macos",
    target_os = "netbsd",
    target_os = "tvos",
    target_os = "visionos",
    target_os = "watchos",
)))]
mod tunable {
    use super::*;

    fn unsupported() -> io::Error {
        io::Error::new(
            io::ErrorKind::Unsupported,
            "this platform cannot set keepalive idle, interval and count per socket, so no \
             detection bound can be promised; use an application heartbeat \
             (connhealth::heartbeat) instead",
        )
    }

    pub(crate) fn apply(_fd: BorrowedFd<'_>, _settings: &DeadPeerSettings) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) fn read(_fd: BorrowedFd<'_>) -> io::Result<Option<DeadPeerSettings>> {
        Err(unsupported())
    }
}

pub(crate) use self::tunable::{apply, read};
