//! The calls behind [`crate::Prober`]'s engine on Windows, in the shape of `sys/unix/probe`:
//! the probe socket and the meaning of its errors (`socket.rs`), the readiness poller
//! (`wsapoll.rs`: `WSAPoll` over the registered sockets) and the cross-thread waker
//! (`waker.rs`: a loopback UDP socket connected to itself, since `WSAPoll` watches
//! sockets only).
//!
//! Windows has no `TCP_QUICKACK`: its stack ACKs the SYN-ACK at once, so a half-open
//! probe completes the handshake and the zero-linger close resets it, as `Mode::Connect`
//! does. The server's kernel sees a connection that is reset at once; an application that
//! accepts quickly may see it too.
//!
//! `WSAPoll` reports a failed connect (`POLLHUP`, `POLLERR`) on Windows 10 2004 and
//! later. Earlier releases never report it, and a refused probe there reads as a timeout.

use std::io;

mod socket;
mod waker;
mod wsapoll;

pub(crate) use self::socket::{classify, start_connect};
pub(crate) use self::waker::LoopbackWaker as Waker;
pub(crate) use self::wsapoll::WsaPoll as Poller;
pub(crate) use crate::sys::raw_none::{source_for, sysctl, Heard, RawSockets};
pub(crate) use crate::sys::wait::WAKE_TOKEN;

/// What `WSAPoll` returned: how many sockets are ready, or the error.
fn ready_count(ret: i32) -> io::Result<usize> {
    if ret < 0 {
        Err(super::last_error())
    } else {
        Ok(ret as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    use crate::sys::borrow;

    /// A connect is reported once, a wake is reported and reset, and an empty wait lasts
    /// its timeout.
    #[test]
    fn the_poller_reports_a_completed_connect_and_a_wake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let waker = Waker::new().unwrap();
        let mut poller = Poller::new(waker.readable()).unwrap();
        let socket = start_connect(&listener.local_addr().unwrap(), true).unwrap();
        poller.add(borrow(&socket), 7).unwrap();
        let mut out = Vec::new();
        poller.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(out, [7]);
        poller.remove(borrow(&socket));
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
        assert!(out.is_empty(), "{out:?}");
        // The timer tick is ~15.6 ms: allow a wait that ends one tick early.
        assert!(
            start.elapsed() >= Duration::from_millis(4),
            "{:?}",
            start.elapsed()
        );
    }

    /// A connect to a closed port is reported as ready, and its error reads as refused.
    #[test]
    fn a_refused_connect_is_reported_and_classified() {
        let closed = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap()
        };
        let waker = Waker::new().unwrap();
        let mut poller = Poller::new(waker.readable()).unwrap();
        let socket = start_connect(&closed, false).unwrap();
        poller.add(borrow(&socket), 9).unwrap();
        let mut out = Vec::new();
        // Windows retries a refused SYN for about a second before it gives up.
        poller.wait(Some(Duration::from_secs(5)), &mut out).unwrap();
        assert_eq!(out, [9]);
        let err = socket.take_error().unwrap().expect("a connect error");
        assert_eq!(classify(&err), crate::sys::Failure::Refused, "{err}");
    }
}
