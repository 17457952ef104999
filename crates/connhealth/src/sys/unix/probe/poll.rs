//! The engine's poller everywhere else (and on Linux with `connhealth_portable`):
//! `poll(2)` over every registered descriptor. O(n) per wait, correct; on Linux CI runs
//! the prober's tests against it.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use super::{ready_count, timeout_ms, WAKE_TOKEN};

/// Readiness for the engine: which registered descriptors became writable (or failed).
#[derive(Debug)]
pub(crate) struct Poll {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
    /// Where each descriptor sits in `fds`, for `remove`.
    index: HashMap<RawFd, usize>,
}

impl Poll {
    /// A poller that reports [`WAKE_TOKEN`] when `waker` (the waker's readable end)
    /// becomes readable.
    pub(crate) fn new(waker: BorrowedFd<'_>) -> io::Result<Poll> {
        let mut poller = Poll {
            fds: Vec::new(),
            tokens: Vec::new(),
            index: HashMap::new(),
        };
        poller.push(waker.as_raw_fd(), libc::POLLIN, WAKE_TOKEN);
        Ok(poller)
    }

    fn push(&mut self, fd: RawFd, events: libc::c_short, token: u64) {
        self.index.insert(fd, self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.tokens.push(token);
    }

    /// Registers a probe socket, reported once its connect completes or fails.
    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.push(fd.as_raw_fd(), libc::POLLOUT, token);
        Ok(())
    }

    /// Must be called before the socket is closed: poll has no kernel-side set, and a
    /// descriptor number reused by the next probe would otherwise inherit this entry.
    pub(crate) fn remove(&mut self, fd: BorrowedFd<'_>) {
        if let Some(at) = self.index.remove(&fd.as_raw_fd()) {
            self.fds.swap_remove(at);
            self.tokens.swap_remove(at);
            if let Some(moved) = self.fds.get(at) {
                self.index.insert(moved.fd, at);
            }
        }
    }

    /// Waits up to `timeout` (forever for `None`) and appends the ready tokens to `out`.
    /// An interrupted wait returns no tokens.
    ///
    /// poll is level-triggered: a ready socket is reported at every wait until it is
    /// removed, which the engine does in the turn that sees it (it closes the socket).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        // SAFETY: `fds` is a live slice of initialised pollfds of the given length.
        let n = unsafe {
            libc::poll(
                self.fds.as_mut_ptr(),
                self.fds.len() as libc::nfds_t,
                timeout_ms(timeout),
            )
        };
        if ready_count(n)?.is_none() {
            return Ok(());
        }
        for (i, pfd) in self.fds.iter_mut().enumerate() {
            if pfd.revents != 0 {
                pfd.revents = 0;
                out.push(self.tokens[i]);
            }
        }
        Ok(())
    }
}
