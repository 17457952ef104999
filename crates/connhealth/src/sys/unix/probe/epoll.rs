//! The engine's poller on Linux: one epoll instance.
//!
//! Probe sockets are registered edge-triggered for `EPOLLOUT`: a connect completes, or
//! fails, exactly once. Closing the only descriptor of a socket removes it from the
//! epoll set, so there is no `EPOLL_CTL_DEL` on the hot path.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{cvt, ready_count, timeout_ms, WAKE_TOKEN};

/// Readiness for the engine: which registered descriptors became writable (or failed).
#[derive(Debug)]
pub(crate) struct Epoll {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    /// A poller that reports [`WAKE_TOKEN`] when `waker` (the waker's readable end)
    /// becomes readable.
    pub(crate) fn new(waker: BorrowedFd<'_>) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative return is a new
        // descriptor that nothing else owns.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let poller = Epoll {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: Vec::with_capacity(1024),
        };
        poller.ctl_add(waker.as_raw_fd(), libc::EPOLLIN | libc::EPOLLET, WAKE_TOKEN)?;
        Ok(poller)
    }

    fn ctl_add(&self, fd: RawFd, events: libc::c_int, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: events as u32,
            u64: token,
        };
        // SAFETY: `event` is a live, initialised epoll_event; both descriptors are open
        // (the caller borrows `fd`).
        cvt(unsafe {
            libc::epoll_ctl(self.epoll.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event)
        })?;
        Ok(())
    }

    /// Registers a probe socket: one edge when the connect completes or fails.
    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.ctl_add(fd.as_raw_fd(), libc::EPOLLOUT | libc::EPOLLET, token)
    }

    /// Registers one of the raw engine's sockets, level-triggered for `EPOLLIN`: it is
    /// reported at every wait while datagrams are queued, so a turn may read a batch and
    /// leave the rest for the next.
    pub(crate) fn add_readable(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.ctl_add(fd.as_raw_fd(), libc::EPOLLIN, token)
    }

    /// Called before a registered socket is closed. Closing the only descriptor of a
    /// socket removes it from every epoll set, so there is nothing to do.
    pub(crate) fn remove(&mut self, _fd: BorrowedFd<'_>) {}

    /// Waits up to `timeout` (forever for `None`) and appends the ready tokens to `out`.
    /// An interrupted wait returns no tokens.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        self.events.clear();
        // SAFETY: the buffer has room for `capacity` events and epoll_wait writes at most
        // that many; `set_len` below covers exactly the ones it wrote.
        let n = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                self.events.as_mut_ptr(),
                self.events.capacity() as libc::c_int,
                timeout_ms(timeout),
            )
        };
        let Some(n) = ready_count(n)? else {
            return Ok(());
        };
        // SAFETY: epoll_wait initialised the first `n` entries.
        unsafe { self.events.set_len(n) };
        out.extend(self.events.iter().map(|e| e.u64));
        Ok(())
    }
}
