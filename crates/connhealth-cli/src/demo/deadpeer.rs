//! Demo part: a peer vanishes (iptables DROP in a private network namespace); `DeadPeer`
//! bounds the silence and `inspect()` warns early. Needs root, `ip` and `iptables`; it
//! installs the last two from Debian's packages when they are missing, as the tests do,
//! and otherwise says why it skips. On Windows it shows the policy's settings and skips
//! the vanishing peer, which needs Linux.

use std::io;
#[cfg(unix)]
use std::io::Write;
#[cfg(unix)]
use std::net::TcpListener;
#[cfg(unix)]
use std::thread;
use std::time::Duration;
#[cfg(unix)]
use std::time::Instant;

use connhealth::DeadPeer;
#[cfg(unix)]
use connhealth::{check, inspect, Status};
#[cfg(unix)]
use connhealth_testkit::Netns;

/// Without a network namespace and iptables: what the policy sets, then a note.
#[cfg(not(unix))]
pub(crate) fn run() -> io::Result<()> {
    super::heading("DeadPeer and inspect(): a peer that vanishes without a FIN or RST");
    let policy = DeadPeer::detect_within(Duration::from_secs(3));
    match policy.settings() {
        Ok(applied) => println!(
            "policy: detect_within({:?}) -> keepalive idle {:?}, interval {:?}, {} probe(s), TCP_MAXRT {}",
            policy.bound(),
            applied.idle,
            applied.interval,
            applied.count,
            applied
                .user_timeout
                .map_or("not available here".to_string(), |t| format!("{t:?}")),
        ),
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

#[cfg(unix)]
pub(crate) fn run() -> io::Result<()> {
    super::heading("DeadPeer and inspect(): a peer that vanishes without a FIN or RST");
    if !connhealth_testkit::is_root() {
        println!("skipped: making a peer vanish needs root (a network namespace and iptables)");
        return Ok(());
    }
    for command in ["ip", "iptables"] {
        // A fresh machine has no iptables: install it, as scripts/test does, rather than
        // skip the part of the demo that shows what the others cannot.
        if let Err(err) = connhealth_testkit::ensure_command(command) {
            println!("skipped: making a peer vanish needs `{command}` ({err})");
            return Ok(());
        }
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
        let (idle, idle_peer) = connhealth_testkit::tcp_pair(&listener)?;
        let (busy, busy_peer) = connhealth_testkit::tcp_pair(&listener)?;
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
