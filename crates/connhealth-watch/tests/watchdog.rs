//! systemd's watchdog is pinged only while the scheduler makes progress: the daemon sends
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` while the scheduler's loop turns (also when no
//! check is due), and none once the scheduler has stopped while the rest of the daemon
//! (HTTP, the ping thread) goes on, so systemd restarts a daemon whose checks are stuck.
//!
//! The daemon reads NOTIFY_SOCKET and WATCHDOG_USEC when it starts; this file is a process
//! of its own with one test, so setting them touches no other test.
#![cfg(target_os = "linux")] // the daemon is Unix's; a notify socket at a path is enough here

mod support;

use std::net::TcpListener;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use connhealth_watch::config;
use connhealth_watch::daemon::Daemon;
use support::{options, temp_dir};

/// Every message received within `window`.
fn messages_within(socket: &UnixDatagram, window: Duration) -> Vec<String> {
    let deadline = Instant::now() + window;
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return messages;
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.recv(&mut buf) {
            Ok(n) => messages.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return messages
            }
            Err(err) => panic!("{err}"),
        }
    }
}

fn pings(messages: &[String]) -> usize {
    messages.iter().filter(|m| *m == "WATCHDOG=1").count()
}

#[test]
fn a_stopped_scheduler_stops_the_watchdog_pings() {
    let dir = temp_dir("watchdog-stuck");
    let socket_path = dir.join("notify");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    std::env::set_var("NOTIFY_SOCKET", &socket_path);
    std::env::set_var("WATCHDOG_USEC", "200000"); // a ping every 100 ms
    std::env::remove_var("WATCHDOG_PID");

    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.write(
        "watch.toml",
        format!(
            "[defaults]\ninterval = \"60s\"\n\n[[targets]]\nname = \"idle\"\naddress = \"{}\"\n",
            target.local_addr().unwrap()
        ),
    );
    let plan = config::load(&path).unwrap_or_else(|errors| panic!("{errors}"));
    let daemon = Daemon::start(options(path.clone()), plan).expect("the daemon starts");

    let first = messages_within(&socket, Duration::from_millis(200));
    assert_eq!(
        first.first().map(String::as_str),
        Some("READY=1\nSTATUS=watching 1 target")
    );
    // Idle (the one target is checked every minute), and pinged all the same.
    let running = messages_within(&socket, Duration::from_secs(1));
    assert!(
        pings(&running) >= 6,
        "{} pings in a second while the scheduler ran: {running:?}",
        pings(&running)
    );

    // The scheduler ends; HTTP and the ping thread go on.
    daemon.shared().stop_scheduler();
    let _ = messages_within(&socket, Duration::from_millis(300));
    let stuck = messages_within(&socket, Duration::from_secs(1));
    assert_eq!(
        pings(&stuck),
        0,
        "pinged while the scheduler made no progress: {stuck:?}"
    );
    assert!(
        support::http(daemon.listen(), "GET", "/-/healthy").is_ok(),
        "the rest of the daemon still runs"
    );

    daemon.stop();
    let last = messages_within(&socket, Duration::from_millis(500));
    assert!(
        last.iter().any(|m| m.starts_with("STOPPING=1")),
        "no STOPPING=1 at stop: {last:?}"
    );
}
