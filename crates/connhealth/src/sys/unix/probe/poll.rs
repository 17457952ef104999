//! The engine's poller everywhere else (and on Linux with `connhealth_portable`):
//! `poll(2)` over every registered descriptor. O(n) per wait, correct; on Linux CI runs
//! the prober's tests against it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use super::{ready_count, timeout_ms, WAKE_TOKEN};
use crate::sys::poll_set::{PollEntry, PollSet};

impl PollEntry for libc::pollfd {
    type Key = RawFd;

    fn key(&self) -> RawFd {
        self.fd
    }

    fn take_ready(&mut self) -> bool {
        std::mem::take(&mut self.revents) != 0
    }
}

/// Readiness for the engine: which registered descriptors became writable (or failed).
#[derive(Debug)]
pub(crate) struct Poll {
    set: PollSet<libc::pollfd>,
}

impl Poll {
    /// A poller that reports [`WAKE_TOKEN`] when `waker` (the waker's readable end)
    /// becomes readable.
    pub(crate) fn new(waker: BorrowedFd<'_>) -> io::Result<Poll> {
        let mut poller = Poll {
            set: PollSet::new(),
        };
        poller.push(waker.as_raw_fd(), libc::POLLIN, WAKE_TOKEN);
        Ok(poller)
    }

    fn push(&mut self, fd: RawFd, events: libc::c_short, token: u64) {
        let entry = libc::pollfd {
            fd,
            events,
            revents: 0,
        };
        self.set.push(entry, token);
    }

    /// Registers a probe socket, reported once its connect completes or fails.
    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.push(fd.as_raw_fd(), libc::POLLOUT, token);
        Ok(())
    }

    /// Registers one of the raw engine's sockets, reported while datagrams are queued.
    #[cfg_attr(not(all(target_os = "linux", connhealth_portable)), allow(dead_code))]
    pub(crate) fn add_readable(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.push(fd.as_raw_fd(), libc::POLLIN, token);
        Ok(())
    }

    /// Must be called before the socket is closed (see [`PollSet::remove`]).
    pub(crate) fn remove(&mut self, fd: BorrowedFd<'_>) {
        self.set.remove(fd.as_raw_fd());
    }

    /// Waits up to `timeout` (forever for `None`) and appends the ready tokens to `out`.
    /// An interrupted wait returns no tokens.
    ///
    /// poll is level-triggered: a ready socket is reported at every wait until it is
    /// removed, which the engine does in the turn that sees it (it closes the socket).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        let fds = self.set.entries_mut();
        // SAFETY: `fds` is a live slice of initialised pollfds of the given length.
        let n = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                timeout_ms(timeout),
            )
        };
        if ready_count(n)?.is_none() {
            return Ok(());
        }
        self.set.ready(out);
        Ok(())
    }
}
