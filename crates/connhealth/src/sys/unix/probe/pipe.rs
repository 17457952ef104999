//! The engine's waker everywhere else (and on Linux with `connhealth_portable`): a
//! self-pipe, one byte per wake, drained at once.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::cvt;

/// Wakes the engine thread from another thread.
#[derive(Debug)]
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a live array of two ints for pipe to fill.
        cvt(unsafe { libc::pipe(fds.as_mut_ptr()) })?;
        // SAFETY: both descriptors were just returned by pipe and are owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        for fd in [&read, &write] {
            let sock = socket2::SockRef::from(fd);
            sock.set_nonblocking(true)?;
            sock.set_cloexec(true)?;
        }
        Ok(Pipe { read, write })
    }

    /// The descriptor the poller watches for readability.
    pub(crate) fn readable(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    pub(crate) fn wake(&self) {
        let one = 1u8;
        // SAFETY: writes one byte from a live u8 to our own nonblocking pipe; a full pipe
        // (EAGAIN) already holds a pending wake.
        unsafe { libc::write(self.write.as_raw_fd(), (&one as *const u8).cast(), 1) };
    }

    pub(crate) fn reset(&self) {
        let mut buf = [0u8; 64];
        // SAFETY: reads into a live 64-byte buffer from our own nonblocking pipe until it
        // is empty (EAGAIN) or fails.
        while unsafe { libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {
        }
    }
}
