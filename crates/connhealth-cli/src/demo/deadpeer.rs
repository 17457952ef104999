//! Demo part: a peer vanishes (iptables DROP in a private network namespace); `DeadPeer`
//! bounds the silence and `inspect()` warns early. Needs Linux, root, `ip` and
//! `iptables`. As root on Debian it installs the two packages that provide them when they
//! are missing, saying so first, so that the README's quick start needs nothing else;
//! elsewhere it says what is missing and skips. On Windows and other Unix it shows the
//! policy's settings and skips the vanishing peer, which needs Linux.

use std::io;
#[cfg(target_os = "linux")]
use std::io::Write;
#[cfg(target_os = "linux")]
use std::net::{TcpListener, TcpStream};
#[cfg(target_os = "linux")]
use std::thread;
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

use connhealth::DeadPeer;
#[cfg(target_os = "linux")]
use connhealth::{check, inspect, Status};

#[cfg(target_os = "linux")]
use super::support::{self, Netns};

/// Without a network namespace and iptables: what the policy sets, then a note.
#[cfg(not(target_os = "linux"))]
pub(crate) fn run() -> io::Result<()> {
    super::heading("DeadPeer and inspect(): a peer that vanishes without a FIN or RST");
    let policy = DeadPeer::detect_within(Duration::from_secs(3));
    match policy.settings() {
        Ok(applied) => {
            println!(
            "policy: detect_within({:?}) -> keepalive idle {:?}, interval {:?}, {} probe(s), {} {}",
            policy.bound(),
            applied.idle,
            applied.interval,
            applied.count,
            if cfg!(windows) { "TCP_MAXRT" } else { "TCP_USER_TIMEOUT" },
            applied
                .user_timeout
                .map_or("not available here".to_string(), |t| format!("{t:?}")),
        )
        }
        Err(err) => println!(
            "policy: detect_within({:?}) cannot be applied here: {err}",
            policy.bound()
        ),
    }
    println!(
        "skipped: making a peer vanish needs Linux (a private network namespace whose iptables \
         drop the peer's packets, as root)"
    );
    Ok(())
}

#[cfg(target_os = "linux")]
pub(crate) fn run() -> io::Result<()> {
    super::heading("DeadPeer and inspect(): a peer that vanishes without a FIN or RST");
    if !support::is_root() {
        println!("skipped: making a peer vanish needs root (a network namespace and iptables)");
        return Ok(());
    }
    // The quick start runs the demo on a fresh machine: as root on Debian, the two
    // packages are installed (saying so); elsewhere the demo says what is missing.
    let missing = || -> Vec<&str> {
        ["ip", "iptables"]
            .into_iter()
            .filter(|command| !support::on_path(command))
            .collect()
    };
    if !missing().is_empty() && support::is_debian() {
        println!("installing iproute2 and iptables with apt-get (for a private network namespace)");
        if let Err(err) = support::apt_install(&["iproute2", "iptables"]) {
            println!("apt-get could not install them: {err}");
        }
    }
    let missing = missing();
    if !missing.is_empty() {
        println!(
            "skipped: making a peer vanish needs `ip` and `iptables` on the PATH; missing: `{}` \
             (on Debian or Ubuntu: apt-get install iproute2 iptables)",
            missing.join("`, `")
        );
        return Ok(());
    }
    let netns = match Netns::new() {
        Ok(netns) => netns,
        Err(err) => {
            println!("skipped: cannot create a network namespace ({err})");
            return Ok(());
        }
    };

    let policy = DeadPeer::detect_within(Duration::from_secs(3));
    let applied = policy.settings().map_err(io::Error::from)?;
    println!(
        "policy: detect_within({:?}) -> keepalive idle {:?}, interval {:?}, {} probe(s), TCP_USER_TIMEOUT {}",
        policy.bound(),
        applied.idle,
        applied.interval,
        applied.count,
        applied
            .user_timeout
            .map_or("not available here".to_string(), |t| format!("{t:?}")),
    );
    println!("(Linux alone: first keepalive probe after 2 h, if keepalive is on; unacknowledged data retried ~15 min)");

    let (idle, mut busy, _peers, port) = netns.enter(|| -> io::Result<_> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let (idle, idle_peer) = tcp_pair(&listener)?;
        let (busy, busy_peer) = tcp_pair(&listener)?;
        Ok((idle, busy, (idle_peer, busy_peer), port))
    })??;
    policy.apply(&idle)?;
    policy.apply(&busy)?;

    if let Err(err) = netns.drop_tcp_port(port) {
        println!("skipped: cannot drop packets with iptables ({err})");
        return Ok(());
    }
    let vanished = Instant::now();
    busy.write_all(&[0u8; 8192])?;
    println!(
        "the peer vanished (iptables DROP); one connection is idle, the other has 8 KiB in flight"
    );

    let mut idle_closed: Option<(Duration, Status)> = None;
    let mut busy_closed: Option<(Duration, Status)> = None;
    let mut stalled: Option<Duration> = None;
    let limit = policy.bound() + Duration::from_secs(1);
    while (idle_closed.is_none() || busy_closed.is_none()) && vanished.elapsed() < limit {
        if stalled.is_none() && inspect(&busy).is_ok_and(|i| i.stalled()) {
            stalled = Some(vanished.elapsed());
        }
        for (conn, closed) in [(&idle, &mut idle_closed), (&busy, &mut busy_closed)] {
            if closed.is_none() {
                let status = check(conn);
                if status.is_closed() {
                    *closed = Some((vanished.elapsed(), status));
                }
            }
        }
        thread::sleep(Duration::from_millis(2));
    }

    let report = |what: &str, closed: Option<(Duration, Status)>| match closed {
        Some((after, status)) => println!(
            "  {what:<16} check() says {status} after {:.2} s (bound {:?})",
            after.as_secs_f64(),
            policy.bound()
        ),
        None => println!("  {what:<16} still open after {limit:?}: the bound was NOT met"),
    };
    match stalled {
        Some(after) => println!(
            "  {:<16} inspect() says stalled after {:.2} s: the early warning",
            "data in flight",
            after.as_secs_f64()
        ),
        None => println!("  {:<16} inspect() never said stalled", "data in flight"),
    }
    report("data in flight", busy_closed);
    report("idle", idle_closed);
    Ok(())
}

/// Connects to `listener` and returns both ends: the client stream and the accepted one.
#[cfg(target_os = "linux")]
fn tcp_pair(listener: &TcpListener) -> io::Result<(TcpStream, TcpStream)> {
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    Ok((client, server))
}
