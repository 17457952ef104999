//! `check()` against the floor and against the alternatives, measured in the same run.
//!
//! ```text
//! cargo bench -p connhealth --bench check
//! ```
//!
//! * the floor: the bare `recv(MSG_PEEK|MSG_DONTWAIT)` loop in C (`limits.c peek`), and the
//!   same syscall through socket2 in this process;
//! * `check()` on an idle loopback TCP connection (target: at most 1.15 x the floor);
//! * a "ping" that reads with a 1 ms deadline, as Go's connpool README suggests;
//! * an application echo round trip over loopback.
//!
//! Each figure is the best of several interleaved rounds, so that a burst of load on the
//! machine does not land on one contender only.
//!
//! On Windows (`scripts/test-windows bench`, under Wine here) the floor is a bare
//! `WSAPoll` with a zero timeout on the same socket, and the alternative is Go's
//! conncheck on Windows: a 1 ms `SO_RCVTIMEO` and a peek, which waits out its millisecond.

#[cfg(unix)]
mod unix {
    use std::hint::black_box;
    use std::io::{Read, Write};
    use std::mem::MaybeUninit;
    use std::net::{TcpListener, TcpStream};
    use std::thread;
    use std::time::{Duration, Instant};

    use connhealth::{check, Status};
    use connhealth_testkit::{c_floor, tcp_pair};
    use socket2::SockRef;

    use super::{best, ns_per_op, ROUNDS};

    const CHECKS: u32 = 2_000_000;

    pub(crate) fn main() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (conn, _peer) = tcp_pair(&listener)?;
        assert_eq!(check(&conn), Status::Open);

        let (mut floor_c, mut floor_line, mut peek, mut ours) =
            (vec![], String::new(), vec![], vec![]);
        for _ in 0..ROUNDS {
            let (ns, line) = c_floor(&["peek", &CHECKS.to_string()])?;
            floor_c.push(ns);
            floor_line = line;
            let sock = SockRef::from(&conn);
            let mut byte = [MaybeUninit::<u8>::uninit(); 1];
            peek.push(ns_per_op(CHECKS, || {
                let _ =
                    black_box(sock.recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT));
            }));
            ours.push(ns_per_op(CHECKS, || {
                black_box(check(black_box(&conn)));
            }));
        }
        let (floor, peek, ours) = (best(&floor_c), best(&peek), best(&ours));

        // A read with a 1 ms deadline, written as a tokio user would: on a healthy idle
        // connection it waits out its deadline. (SO_RCVTIMEO would be worse: the kernel rounds
        // it up to whole jiffies.)
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let ping = runtime.block_on(async {
            use tokio::io::AsyncReadExt;
            let ping_conn = conn.try_clone()?;
            ping_conn.set_nonblocking(true)?;
            let mut ping_conn = tokio::net::TcpStream::from_std(ping_conn)?;
            let mut buf = [0u8; 1];
            let start = Instant::now();
            for _ in 0..200 {
                let read = ping_conn.read(&mut buf);
                let _ = black_box(tokio::time::timeout(Duration::from_millis(1), read).await);
            }
            Ok::<f64, std::io::Error>(start.elapsed().as_nanos() as f64 / 200.0)
        })?;
        let mut buf = [0u8; 1];

        // An application round trip: one byte to an echo server and back.
        let echo_listener = TcpListener::bind("127.0.0.1:0")?;
        let echo_addr = echo_listener.local_addr()?;
        thread::spawn(move || {
            let (mut s, _) = echo_listener.accept().unwrap();
            let mut b = [0u8; 1];
            while s.read_exact(&mut b).is_ok() && s.write_all(&b).is_ok() {}
        });
        let mut echo = TcpStream::connect(echo_addr)?;
        echo.set_nodelay(true)?;
        let round_trip = ns_per_op(20_000, || {
            echo.write_all(b"p").unwrap();
            echo.read_exact(&mut buf).unwrap();
        });

        println!("floor (C, same run): {floor_line}   [best of {ROUNDS}: {floor:.1} ns/op]");
        println!(
            "recv(MSG_PEEK|MSG_DONTWAIT) via socket2: {peek:>10.1} ns/op = {:.2} x floor",
            peek / floor
        );
        println!("check():                                 {ours:>10.1} ns/op = {:.2} x floor (target <= 1.15)", ours / floor);
        println!(
            "read with a 1 ms deadline (\"ping\"):      {ping:>10.1} ns/op = {:.0} x check()",
            ping / ours
        );
        println!(
            "echo round trip over loopback:           {round_trip:>10.1} ns/op = {:.0} x check()",
            round_trip / ours
        );
        Ok(())
    }
}

#[cfg(windows)]
mod windows {
    use std::hint::black_box;
    use std::io::Read;
    use std::net::TcpListener;
    use std::os::windows::io::AsRawSocket;
    use std::time::Duration;

    use connhealth::{check, Status};
    use connhealth_testkit::{is_wine, tcp_pair};
    use windows_sys::Win32::Networking::WinSock::{WSAPoll, POLLRDNORM, SOCKET, WSAPOLLFD};

    use super::{best, ns_per_op, ROUNDS};

    const CHECKS: u32 = 200_000;

    pub(crate) fn main() -> std::io::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let (conn, _peer) = tcp_pair(&listener)?;
        assert_eq!(check(&conn), Status::Open);
        let raw = conn.as_raw_socket() as SOCKET;

        let (mut floor, mut ours) = (vec![], vec![]);
        for _ in 0..ROUNDS {
            floor.push(ns_per_op(CHECKS, || {
                let mut pollfd = WSAPOLLFD {
                    fd: raw,
                    events: POLLRDNORM,
                    revents: 0,
                };
                // SAFETY: one live WSAPOLLFD, a count of 1, and a zero timeout.
                black_box(unsafe { WSAPoll(&mut pollfd, 1, 0) });
            }));
            ours.push(ns_per_op(CHECKS, || {
                black_box(check(black_box(&conn)));
            }));
        }
        let (floor, ours) = (best(&floor), best(&ours));

        // Go's conncheck on Windows: a 1 ms receive timeout, then a peek that waits it out.
        conn.set_read_timeout(Some(Duration::from_millis(1)))?;
        let mut byte = [0u8; 1];
        let conncheck = ns_per_op(200, || {
            let _ = black_box(conn.peek(&mut byte));
        });
        let _ = (&conn).read(&mut []);

        if is_wine() {
            println!(
                "under Wine: WSAPoll is Wine's, on Linux's kernel, not Windows'; the ratio \
                 shows only that check() adds nothing to the call it makes"
            );
        }
        println!(
            "floor: WSAPoll, zero timeout, same socket: {floor:>10.1} ns/op [best of {ROUNDS}]"
        );
        println!(
            "check():                                   {ours:>10.1} ns/op = {:.2} x floor (target <= 1.15)",
            ours / floor
        );
        println!(
            "1 ms SO_RCVTIMEO + peek (Go's conncheck):  {conncheck:>10.1} ns/op = {:.0} x check()",
            conncheck / ours
        );
        Ok(())
    }
}

use std::time::Instant;

const ROUNDS: usize = 7;

/// The mean time of one `op` over `iterations` calls.
fn ns_per_op(iterations: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    start.elapsed().as_nanos() as f64 / f64::from(iterations)
}

fn best(samples: &[f64]) -> f64 {
    samples.iter().copied().fold(f64::INFINITY, f64::min)
}

fn main() -> std::io::Result<()> {
    #[cfg(unix)]
    return unix::main();
    #[cfg(windows)]
    return windows::main();
}
