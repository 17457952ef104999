//! Windows, through Winsock. Split by concern as `sys/unix` is; each file serves one
//! capability of the crate and reads the same names.
//!
//! Built for `x86_64-pc-windows-gnu` and tested under Wine (`scripts/test-windows`), not
//! on a Windows machine. Where Wine's Winsock differs from what Windows documents, the
//! code follows the documentation and the tests say what each one does.

pub(crate) mod check;
pub(crate) mod clock;
pub(crate) mod cpu;
pub(crate) mod keepalive;
pub(crate) mod probe;
pub(crate) mod tcp_info;

use std::io;
use std::os::windows::io::AsRawSocket;

use windows_sys::Win32::Networking::WinSock::{self, SOCKET};

/// What the public functions take: anything that lends its socket handle.
pub(crate) use std::os::windows::io::{AsSocket, BorrowedSocket};

/// Borrows the socket handle of `conn`.
pub(crate) fn borrow<S: AsSocket + ?Sized>(conn: &S) -> BorrowedSocket<'_> {
    conn.as_socket()
}

/// The raw handle, as Winsock's functions take it.
fn raw(sock: BorrowedSocket<'_>) -> SOCKET {
    sock.as_raw_socket() as SOCKET
}

/// The last Winsock error as an `io::Error`, whose `raw_os_error` is the `WSAE*` code and
/// whose kind std maps (`WSAECONNRESET` is `ConnectionReset`, and so on).
fn last_error() -> io::Error {
    // SAFETY: WSAGetLastError reads the calling thread's last Winsock error; no pointers.
    io::Error::from_raw_os_error(unsafe { WinSock::WSAGetLastError() })
}
