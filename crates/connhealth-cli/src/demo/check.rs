//! Demo part 1: `check()` sees a FIN, an RST and pending data at once, next to what a
//! peek-based check (Go's conncheck) and a read-deadline ping make of the same connections.

use std::io::{self, Write};
#[cfg(unix)]
use std::mem::MaybeUninit;
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use connhealth::{check, Status};
use socket2::SockRef;

/// What the peer does to its end of the connection before we look.
#[derive(Clone, Copy)]
enum Peer {
    Idle,
    Sends,
    SendsThenCloses,
    Closes,
    Resets,
}

impl Peer {
    const ALL: [Peer; 5] = [
        Peer::Idle,
        Peer::Sends,
        Peer::SendsThenCloses,
        Peer::Closes,
        Peer::Resets,
    ];

    fn describe(self) -> &'static str {
        match self {
            Peer::Idle => "peer idle",
            Peer::Sends => "peer sent a reply",
            Peer::SendsThenCloses => "peer sent a reply, then FIN",
            Peer::Closes => "peer closed (FIN)",
            Peer::Resets => "peer reset (RST)",
        }
    }

    /// Opens a connection to `listener` and lets the peer act on it.
    fn connection(self, listener: &TcpListener) -> io::Result<(TcpStream, Option<TcpStream>)> {
        let conn = TcpStream::connect(listener.local_addr()?)?;
        let (mut peer, _) = listener.accept()?;
        let peer = match self {
            Peer::Idle => Some(peer),
            Peer::Sends => {
                peer.write_all(b"+PONG\r\n")?;
                Some(peer)
            }
            Peer::SendsThenCloses => {
                peer.write_all(b"+PONG\r\n")?;
                None
            }
            Peer::Closes => None,
            Peer::Resets => {
                SockRef::from(&peer).set_linger(Some(Duration::ZERO))?;
                None
            }
        };
        Ok((conn, peer))
    }
}

/// What `recv(MSG_PEEK | MSG_DONTWAIT)` of one byte says, as Go's conncheck reads it.
#[cfg(unix)]
fn peek_view(conn: &TcpStream) -> &'static str {
    let mut byte = [MaybeUninit::<u8>::uninit(); 1];
    match SockRef::from(conn).recv_with_flags(&mut byte, libc::MSG_PEEK | libc::MSG_DONTWAIT) {
        Ok(0) => "closed",
        Ok(_) => "open",
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => "open",
        Err(_) => "closed",
    }
}

/// What `recv(MSG_PEEK)` of one byte on a nonblocking socket says, as Go's conncheck reads
/// it (Windows has no `MSG_DONTWAIT`; `conn` is this view's own connection).
#[cfg(not(unix))]
fn peek_view(conn: &TcpStream) -> &'static str {
    let mut byte = [0u8; 1];
    match conn
        .set_nonblocking(true)
        .and_then(|()| conn.peek(&mut byte))
    {
        Ok(0) => "closed",
        Ok(_) => "open",
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => "open",
        Err(_) => "closed",
    }
}

pub(crate) fn run() -> io::Result<()> {
    super::heading("check(): the kernel's view of an established connection");
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!(
        "  {:<30} {:<26} {:>9}   a recv(MSG_PEEK) check says",
        "connection", "check() says", "took"
    );
    let mut idle = None;
    for peer in Peer::ALL {
        // The same situation twice: a peek takes a pending error, so each view gets its own.
        let (conn, peer_end) = peer.connection(&listener)?;
        let (peek_conn, peek_peer_end) = peer.connection(&listener)?;
        thread::sleep(Duration::from_millis(20)); // let loopback deliver the FIN or RST
        let start = Instant::now();
        let status = check(&conn);
        let took = start.elapsed();
        let peeked = peek_view(&peek_conn);
        let verdict = match (status.is_closed(), peeked) {
            (true, "open") => "open (misses the FIN behind the data)",
            _ => peeked,
        };
        println!(
            "  {:<30} {:<26} {:>6.2} µs   {verdict}",
            peer.describe(),
            status.to_string(),
            took.as_secs_f64() * 1e6,
        );
        drop(peek_peer_end);
        if matches!(status, Status::Open) {
            idle = Some((conn, peer_end));
        }
    }

    let (conn, _peer) = idle.ok_or_else(|| io::Error::other("the idle connection was not open"))?;
    let checks = 100_000;
    let start = Instant::now();
    for _ in 0..checks {
        std::hint::black_box(check(&conn));
    }
    let per_check = start.elapsed() / checks;
    let ping = deadline_ping(&conn)?;
    println!(
        "\n  check() on the idle connection: {per_check:?} each, over {checks} calls; no byte sent or read."
    );
    println!(
        "  A ping that reads with a 1 ms deadline: {ping:?}, and all it learns is \"no reply yet\" \
         ({:.0}x slower).",
        ping.as_secs_f64() / per_check.as_secs_f64().max(1e-9)
    );
    Ok(())
}

/// The usual alternative: read with a 1 ms deadline and call silence "alive".
fn deadline_ping(conn: &TcpStream) -> io::Result<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        use tokio::io::AsyncReadExt;
        let std_conn = conn.try_clone()?;
        std_conn.set_nonblocking(true)?;
        let mut conn = tokio::net::TcpStream::from_std(std_conn)?;
        let mut buf = [0u8; 1];
        let start = Instant::now();
        let _ = tokio::time::timeout(Duration::from_millis(1), conn.read(&mut buf)).await;
        Ok(start.elapsed())
    })
}
