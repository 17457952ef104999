//! The system calls behind [`crate::Prober`]'s engine: the probe socket, a readiness
//! poller, a cross-thread waker, and the classification of connect errors.
//!
//! Linux: one epoll instance, probe sockets registered edge-triggered for `EPOLLOUT` (a
//! connect completes, or fails, exactly once), and an eventfd to wake the engine. Closing a
//! probe socket removes it from the epoll set, so there is no `EPOLL_CTL_DEL` on the hot
//! path. Elsewhere: `poll(2)` over the registered descriptors and a self-pipe; O(n) per
//! wait, correct, and untested outside Linux.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, SockAddr, Socket, Type};

/// The token the engine's waker reports. Probe tokens are `slot | generation << 32` with
/// a slot index far below `u32::MAX`, so they never collide with it.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// What a failed `socket()` or `connect()`, or a socket error after the connect, means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// `ECONNREFUSED`: an RST answered the SYN.
    Refused,
    /// `ETIMEDOUT`: the kernel gave up retransmitting the SYN.
    TimedOut,
    /// No route, or an ICMP unreachable came back.
    Unreachable,
    /// Our own resources ran out (descriptors, local ports, buffers): not the target's
    /// fault, and worth retrying once other probes give theirs back.
    Exhausted,
    /// Anything else.
    Other,
}

pub(crate) fn classify(err: &io::Error) -> Failure {
    match err.raw_os_error() {
        Some(libc::ECONNREFUSED) => Failure::Refused,
        Some(libc::ETIMEDOUT) => Failure::TimedOut,
        Some(libc::ENETUNREACH | libc::EHOSTUNREACH | libc::ENETDOWN | libc::EHOSTDOWN) => {
            Failure::Unreachable
        }
        // EMFILE/ENFILE: out of descriptors. EADDRNOTAVAIL: no free local port for this
        // destination (or EAGAIN on some systems). ENOBUFS/ENOMEM: socket buffers.
        Some(
            libc::EMFILE
            | libc::ENFILE
            | libc::EADDRNOTAVAIL
            | libc::EAGAIN
            | libc::ENOBUFS
            | libc::ENOMEM,
        ) => Failure::Exhausted,
        _ => Failure::Other,
    }
}

/// Opens a nonblocking, close-on-exec TCP socket for a probe to `addr`, sets the options
/// that make it half-open (or not), and starts the connect. `Ok` means the SYN is on its
/// way (or, rarely, the connect already completed): register the socket for writability.
pub(crate) fn start_connect(addr: &SocketAddr, half_open: bool) -> io::Result<Socket> {
    let domain = Domain::for_address(*addr);
    #[cfg(target_os = "linux")]
    let socket = Socket::new(domain, Type::STREAM.nonblocking(), None)?;
    #[cfg(not(target_os = "linux"))]
    let socket = {
        let socket = Socket::new(domain, Type::STREAM, None)?;
        socket.set_nonblocking(true)?;
        socket
    };
    set_half_open(&socket, half_open)?;
    // A zero linger makes close() send an RST and free the socket at once: no FIN
    // exchange, no TIME_WAIT left behind, in either mode.
    socket.set_linger(Some(Duration::ZERO))?;
    match socket.connect(&SockAddr::from(*addr)) {
        Ok(()) => Ok(socket),
        Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => Ok(socket),
        Err(err) => Err(err),
    }
}

/// Linux: TCP_QUICKACK off puts the socket in delayed-ACK ("pingpong") mode before the
/// SYN leaves, so the kernel does not ACK the SYN-ACK at once; it would do so only after
/// the delayed-ACK timer (~40-200 ms). The engine closes the socket long before that, and
/// the server's half-finished handshake is reset, never accepted.
#[cfg(target_os = "linux")]
fn set_half_open(socket: &Socket, half_open: bool) -> io::Result<()> {
    if half_open {
        socket.set_tcp_quickack(false)?;
    }
    Ok(())
}

/// Elsewhere there is no TCP_QUICKACK: the kernel ACKs the SYN-ACK immediately, the
/// handshake completes, and the zero-linger close resets it. Half-open is Connect here.
#[cfg(not(target_os = "linux"))]
fn set_half_open(_socket: &Socket, _half_open: bool) -> io::Result<()> {
    Ok(())
}

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

/// Converts a wait timeout to poll/epoll milliseconds, rounding up so the engine never
/// wakes before a deadline (a wake that early would only loop), and capping at `i32::MAX`.
fn timeout_ms(timeout: Option<Duration>) -> libc::c_int {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(libc::c_int::MAX as u128) as libc::c_int
        }
    }
}

/// Wakes the engine thread from another thread.
#[derive(Debug)]
pub(crate) struct Waker {
    #[cfg(target_os = "linux")]
    fd: OwnedFd,
    #[cfg(not(target_os = "linux"))]
    read: OwnedFd,
    #[cfg(not(target_os = "linux"))]
    write: OwnedFd,
}

#[cfg(target_os = "linux")]
impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
        // SAFETY: eventfd takes no pointers; a non-negative return is a new descriptor
        // that nothing else owns.
        let fd = cvt(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: `fd` was just returned by eventfd and is owned by nobody else.
        Ok(Waker {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn readable(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our own eventfd. The only failure is
        // EAGAIN when the counter is saturated, which means a wake is pending anyway.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    pub(crate) fn reset(&self) {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our own nonblocking eventfd; EAGAIN
        // (nothing pending) is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    }
}

#[cfg(not(target_os = "linux"))]
impl Waker {
    pub(crate) fn new() -> io::Result<Waker> {
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
        Ok(Waker { read, write })
    }

    fn readable(&self) -> BorrowedFd<'_> {
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

/// Readiness for the engine: which registered descriptors became writable (or failed).
#[cfg(target_os = "linux")]
#[derive(Debug)]
pub(crate) struct Poller {
    epoll: OwnedFd,
    events: Vec<libc::epoll_event>,
}

#[cfg(target_os = "linux")]
impl Poller {
    pub(crate) fn new(waker: &Waker) -> io::Result<Poller> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative return is a new
        // descriptor that nothing else owns.
        let fd = cvt(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        let poller = Poller {
            // SAFETY: `fd` was just returned by epoll_create1 and is owned by nobody else.
            epoll: unsafe { OwnedFd::from_raw_fd(fd) },
            events: Vec::with_capacity(1024),
        };
        poller.ctl_add(
            waker.readable().as_raw_fd(),
            libc::EPOLLIN | libc::EPOLLET,
            WAKE_TOKEN,
        )?;
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

/// Readiness for the engine, portable: `poll(2)` over every registered descriptor.
#[cfg(any(not(target_os = "linux"), test))]
#[derive(Debug)]
pub(crate) struct PollPoller {
    fds: Vec<libc::pollfd>,
    tokens: Vec<u64>,
    index: std::collections::HashMap<RawFd, usize>,
}

#[cfg(any(not(target_os = "linux"), test))]
impl PollPoller {
    pub(crate) fn new(waker: &Waker) -> io::Result<PollPoller> {
        let mut poller = PollPoller {
            fds: Vec::new(),
            tokens: Vec::new(),
            index: std::collections::HashMap::new(),
        };
        poller.push(waker.readable().as_raw_fd(), libc::POLLIN, WAKE_TOKEN);
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

    pub(crate) fn add(&mut self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        self.push(fd.as_raw_fd(), libc::POLLOUT, token);
        Ok(())
    }

    /// Must be called before the socket is closed: poll has no kernel-side set.
    pub(crate) fn remove(&mut self, fd: BorrowedFd<'_>) {
        if let Some(at) = self.index.remove(&fd.as_raw_fd()) {
            self.fds.swap_remove(at);
            self.tokens.swap_remove(at);
            if let Some(moved) = self.fds.get(at) {
                self.index.insert(moved.fd, at);
            }
        }
    }

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

#[cfg(not(target_os = "linux"))]
pub(crate) use PollPoller as Poller;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    #[test]
    fn portable_poller_reports_a_completed_connect_and_a_wake() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let waker = Waker::new().unwrap();
        let mut poller = PollPoller::new(&waker).unwrap();
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

    #[test]
    fn wait_timeouts_round_up() {
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::MAX)), libc::c_int::MAX);
    }
}
