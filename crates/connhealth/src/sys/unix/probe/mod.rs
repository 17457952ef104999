//! The system calls behind [`crate::Prober`]'s engine, split by concern as mio splits
//! its `sys/unix`: the probe socket and the meaning of its errors (`socket.rs`), a
//! readiness poller, and a cross-thread waker, each backend in a file of its own and
//! chosen here by `cfg`:
//!
//! | | poller | waker |
//! |---|---|---|
//! | Linux | `epoll.rs`: one epoll set, edge-triggered | `eventfd.rs` |
//! | elsewhere | `poll.rs`: `poll(2)` over the registered descriptors | `pipe.rs`: a self-pipe |
//!
//! `--cfg connhealth_portable` selects the second row on Linux too, as mio's
//! `mio_unsupported_force_poll_poll` does, so that CI runs the prober's tests against
//! the portable backends (`.ci/run`). It leaves TCP_QUICKACK alone: that is a property of
//! the socket, not of the readiness backend, and the half-open tests need it.
//!
//! On Linux, `raw.rs` holds the raw engine's sockets (either poller registers them with
//! `add_readable`); elsewhere `sys/raw_none.rs` stands in, and opening them fails.
//!
//! The engine sees one interface whichever row is chosen: `Poller::new(waker)`,
//! `add(fd, token)`, `remove(fd)` before a close, `wait(timeout, &mut tokens)`; and
//! `Waker::new()`, `readable()`, `wake()`, `reset()`.

use std::io;

#[cfg(all(target_os = "linux", not(connhealth_portable)))]
mod epoll;
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
mod eventfd;
#[cfg(any(not(target_os = "linux"), connhealth_portable, test))]
mod pipe;
#[cfg(any(not(target_os = "linux"), connhealth_portable, test))]
mod poll;
#[cfg(target_os = "linux")]
mod raw;
mod socket;

#[cfg(all(target_os = "linux", not(connhealth_portable)))]
pub(crate) use self::epoll::Epoll as Poller;
#[cfg(all(target_os = "linux", not(connhealth_portable)))]
pub(crate) use self::eventfd::EventFd as Waker;
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
pub(crate) use self::pipe::Pipe as Waker;
#[cfg(any(not(target_os = "linux"), connhealth_portable))]
pub(crate) use self::poll::Poll as Poller;
#[cfg(target_os = "linux")]
pub(crate) use self::raw::{source_for, sysctl, Heard, RawSockets, RECV_BATCH};
pub(crate) use self::socket::{classify, start_connect};
#[cfg(not(target_os = "linux"))]
pub(crate) use crate::sys::raw_none::{source_for, sysctl, Heard, RawSockets, RECV_BATCH};
use crate::sys::wait::timeout_ms;
pub(crate) use crate::sys::wait::WAKE_TOKEN;

/// What a wait (`epoll_wait`, `poll`) returned: how many entries are ready, or `None`
/// when a signal interrupted it (`EINTR`), which only means "look again".
fn ready_count(ret: libc::c_int) -> io::Result<Option<usize>> {
    match cvt(ret) {
        Ok(n) => Ok(Some(n as usize)),
        Err(err) if err.kind() == io::ErrorKind::Interrupted => Ok(None),
        Err(err) => Err(err),
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    /// The portable pair, on every platform: a connect is reported once, a wake is
    /// reported and reset, and an empty wait lasts its timeout.
    #[test]
    fn portable_poller_reports_a_completed_connect_and_a_wake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let waker = pipe::Pipe::new().unwrap();
        let mut poller = poll::Poll::new(waker.readable()).unwrap();
        let socket = start_connect(&listener.local_addr().unwrap(), true).unwrap();
        poller.add(socket.as_fd(), 7).unwrap();
        let mut out = Vec::new();
        poller.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(out, [7]);
        poller.remove(socket.as_fd());
        drop(socket);

        waker.wake();
        out.clear();
        poller.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(out, [WAKE_TOKEN]);
        waker.reset();
        out.clear();
        let start = Instant::now();
        poller
            .wait(Some(Duration::from_millis(20)), &mut out)
            .unwrap();
        assert!(out.is_empty() && start.elapsed() >= Duration::from_millis(20));
    }
}
