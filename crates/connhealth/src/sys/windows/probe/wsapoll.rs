//! The engine's poller on Windows: `WSAPoll` over every registered socket, as
//! `sys/unix/probe/poll.rs` does with `poll(2)`. O(n) per wait, correct. IOCP would scale
//! further (mio's choice), at the price of a completion port, `ConnectEx` and buffers
//! that outlive each call; the engine's turn does not need it at the in-flight counts a
//! Windows client uses.

use std::io;
use std::time::Duration;

use windows_sys::Win32::Networking::WinSock::{self, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD};

use super::super::{raw, BorrowedSocket};
use super::{ready_count, WAKE_TOKEN};
use crate::sys::poll_set::{PollEntry, PollSet};
use crate::sys::wait::timeout_ms;

impl PollEntry for WSAPOLLFD {
    type Key = SOCKET;

    fn key(&self) -> SOCKET {
        self.fd
    }

    fn take_ready(&mut self) -> bool {
        std::mem::take(&mut self.revents) != 0
    }
}

/// Readiness for the engine: which registered sockets became writable (or failed).
#[derive(Debug)]
pub(crate) struct WsaPoll {
    set: PollSet<WSAPOLLFD>,
}

impl WsaPoll {
    /// A poller that reports [`WAKE_TOKEN`] when `waker` (the waker's socket) becomes
    /// readable.
    pub(crate) fn new(waker: BorrowedSocket<'_>) -> io::Result<WsaPoll> {
        let mut poller = WsaPoll {
            set: PollSet::new(),
        };
        poller.push(raw(waker), POLLRDNORM, WAKE_TOKEN);
        Ok(poller)
    }

    fn push(&mut self, fd: SOCKET, events: i16, token: u64) {
        let entry = WSAPOLLFD {
            fd,
            events,
            revents: 0,
        };
        self.set.push(entry, token);
    }

    /// Registers a probe socket, reported once its connect completes or fails.
    pub(crate) fn add(&mut self, sock: BorrowedSocket<'_>, token: u64) -> io::Result<()> {
        self.push(raw(sock), POLLWRNORM, token);
        Ok(())
    }

    /// Must be called before the socket is closed (see [`PollSet::remove`]).
    pub(crate) fn remove(&mut self, sock: BorrowedSocket<'_>) {
        self.set.remove(raw(sock));
    }

    /// Waits up to `timeout` (forever for `None`) and appends the ready tokens to `out`.
    ///
    /// `WSAPoll` is level-triggered: a ready socket is reported at every wait until it is
    /// removed, which the engine does in the turn that sees it (it closes the socket).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        let fds = self.set.entries_mut();
        // SAFETY: `fds` is a live slice of initialised WSAPOLLFDs of the given length,
        // which WSAPoll reads and whose `revents` it writes during the call.
        let n =
            unsafe { WinSock::WSAPoll(fds.as_mut_ptr(), fds.len() as u32, timeout_ms(timeout)) };
        if ready_count(n)? == 0 {
            return Ok(());
        }
        self.set.ready(out);
        Ok(())
    }
}
