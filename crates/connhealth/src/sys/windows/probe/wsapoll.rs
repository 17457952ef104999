//! The engine's poller on Windows: `WSAPoll` over every registered socket, as
//! `sys/unix/probe/poll.rs` does with `poll(2)`. O(n) per wait, correct. IOCP would scale
//! further (mio's choice), at the price of a completion port, `ConnectEx` and buffers
//! that outlive each call; the engine's turn does not need it at the in-flight counts a
//! Windows client uses.

use std::collections::HashMap;
use std::io;
use std::time::Duration;

use windows_sys::Win32::Networking::WinSock::{self, POLLRDNORM, POLLWRNORM, SOCKET, WSAPOLLFD};

use super::super::{raw, BorrowedSocket};
use super::{ready_count, WAKE_TOKEN};
use crate::sys::wait::timeout_ms;

/// Readiness for the engine: which registered sockets became writable (or failed).
pub(crate) struct WsaPoll {
    fds: Vec<WSAPOLLFD>,
    tokens: Vec<u64>,
    /// Where each socket sits in `fds`, for `remove`.
    index: HashMap<SOCKET, usize>,
}

impl std::fmt::Debug for WsaPoll {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsaPoll")
            .field("registered", &self.fds.len())
            .finish_non_exhaustive()
    }
}

impl WsaPoll {
    /// A poller that reports [`WAKE_TOKEN`] when `waker` (the waker's socket) becomes
    /// readable.
    pub(crate) fn new(waker: BorrowedSocket<'_>) -> io::Result<WsaPoll> {
        let mut poller = WsaPoll {
            fds: Vec::new(),
            tokens: Vec::new(),
            index: HashMap::new(),
        };
        poller.push(raw(waker), POLLRDNORM, WAKE_TOKEN);
        Ok(poller)
    }

    fn push(&mut self, fd: SOCKET, events: i16, token: u64) {
        self.index.insert(fd, self.fds.len());
        self.fds.push(WSAPOLLFD {
            fd,
            events,
            revents: 0,
        });
        self.tokens.push(token);
    }

    /// Registers a probe socket, reported once its connect completes or fails.
    pub(crate) fn add(&mut self, sock: BorrowedSocket<'_>, token: u64) -> io::Result<()> {
        self.push(raw(sock), POLLWRNORM, token);
        Ok(())
    }

    /// Must be called before the socket is closed: a handle value reused by the next
    /// probe would otherwise inherit this entry.
    pub(crate) fn remove(&mut self, sock: BorrowedSocket<'_>) {
        if let Some(at) = self.index.remove(&raw(sock)) {
            self.fds.swap_remove(at);
            self.tokens.swap_remove(at);
            if let Some(moved) = self.fds.get(at) {
                self.index.insert(moved.fd, at);
            }
        }
    }

    /// Waits up to `timeout` (forever for `None`) and appends the ready tokens to `out`.
    ///
    /// `WSAPoll` is level-triggered: a ready socket is reported at every wait until it is
    /// removed, which the engine does in the turn that sees it (it closes the socket).
    pub(crate) fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<u64>) -> io::Result<()> {
        // SAFETY: `fds` is a live slice of initialised WSAPOLLFDs of the given length,
        // which WSAPoll reads and whose `revents` it writes during the call.
        let n = unsafe {
            WinSock::WSAPoll(
                self.fds.as_mut_ptr(),
                self.fds.len() as u32,
                timeout_ms(timeout),
            )
        };
        if ready_count(n)? == 0 {
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
