//! Unix, with Linux-only refinements behind `cfg(target_os = "linux")`.
//!
//! Split by concern, as mio does: each file serves one capability of the crate.

pub(crate) mod check;
pub(crate) mod clock;
pub(crate) mod cpu;
pub(crate) mod keepalive;
pub(crate) mod probe;
pub(crate) mod tcp_info;

/// What the public functions take: anything that lends its descriptor.
pub(crate) use std::os::fd::{AsFd as AsSocket, BorrowedFd as BorrowedSocket};

/// Borrows the descriptor of `conn`.
pub(crate) fn borrow<S: AsSocket + ?Sized>(conn: &S) -> BorrowedSocket<'_> {
    conn.as_fd()
}
