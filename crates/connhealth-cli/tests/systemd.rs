//! `connhealth watch` under systemd's notification protocol (sd_notify(3)), against a
//! notify socket of the test's own, as systemd would hold it for a `Type=notify` unit with
//! `WatchdogSec=`: `READY=1` and `STATUS=watching N targets` once the config is loaded and
//! the listener bound, `RELOADING=1` with `MONOTONIC_USEC` then `READY=1` around a SIGHUP,
//! `WATCHDOG=1` at half of `WATCHDOG_USEC` (also while no check is due), and `STOPPING=1`
//! at SIGTERM. The daemon is the built binary, run as a child process.
//!
//! That a stuck scheduler stops the pings is the daemon crate's `tests/watchdog.rs`.
#![cfg(target_os = "linux")] // the daemon is Unix's; the abstract socket name is Linux's

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connhealth_testkit::TempDir;

/// A notify socket: every datagram it receives, with the time it came.
struct NotifySocket {
    address: String,
    messages: mpsc::Receiver<(Instant, String)>,
}

impl NotifySocket {
    /// Bound at a path in `dir`.
    fn at_path(dir: &TempDir) -> NotifySocket {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket::receiving(socket, path.to_str().unwrap().to_owned())
    }

    /// Bound at an abstract name (`@...` in NOTIFY_SOCKET, as systemd's own is).
    fn abstract_name(name: &str) -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let socket = UnixDatagram::bind_addr(&address).expect("bind the abstract notify socket");
        NotifySocket::receiving(socket, format!("@{name}"))
    }

    fn receiving(socket: UnixDatagram, address: String) -> NotifySocket {
        let (tx, messages) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = socket.recv(&mut buf) {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                if tx.send((Instant::now(), text)).is_err() {
                    return;
                }
            }
        });
        NotifySocket { address, messages }
    }

    /// The next message that is not a watchdog ping, within `limit`.
    fn next_not_ping(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.messages.recv_timeout(left) {
                Ok((_, text)) if text == "WATCHDOG=1" => continue,
                Ok((_, text)) => return text,
                Err(_) => panic!("no notification within {limit:?}"),
            }
        }
    }
}

/// `KEY=VALUE` lines, in order.
fn assignments(message: &str) -> Vec<(&str, &str)> {
    message
        .lines()
        .map(|line| line.split_once('=').expect("KEY=VALUE"))
        .collect()
}

fn value<'a>(message: &'a str, key: &str) -> Option<&'a str> {
    assignments(message)
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn config(targets: usize, address: SocketAddr) -> String {
    // Checked rarely: the scheduler is idle between checks, and the watchdog must be
    // pinged all the same.
    let mut text = String::from("[defaults]\ninterval = \"60s\"\n");
    for i in 0..targets {
        text.push_str(&format!(
            "[[targets]]\nname = \"t{i}\"\naddress = \"{address}\"\n"
        ));
    }
    text
}

struct Daemon {
    child: Child,
    listen: SocketAddr,
}

impl Daemon {
    fn start(config: &Path, notify: &NotifySocket, watchdog_usec: Option<u64>) -> Daemon {
        let listen = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_connhealth"));
        command
            .args(["watch", "--config", config.to_str().unwrap()])
            .args(["--listen", &listen.to_string()])
            .env("NOTIFY_SOCKET", &notify.address)
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(usec) = watchdog_usec {
            command.env("WATCHDOG_USEC", usec.to_string());
        }
        let child = command.spawn().expect("start connhealth watch");
        Daemon { child, listen }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory effects; the child is ours and not yet reaped.
        assert_eq!(
            unsafe { libc::kill(self.child.id() as libc::pid_t, signal) },
            0
        );
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("the daemon did not exit within {limit:?}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the struct it is given and has no other effect.
    assert_eq!(
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) },
        0
    );
    now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000
}

/// READY=1 with the target count, sent once the listener is bound (a connect at that
/// moment succeeds); then RELOADING=1 stamped with CLOCK_MONOTONIC, and READY=1 with the
/// new count, around a SIGHUP; STOPPING=1 at SIGTERM, and exit 0.
#[test]
fn ready_reloading_and_stopping_bracket_the_daemons_life() {
    let dir = TempDir::new("systemd-life");
    let notify = NotifySocket::at_path(&dir);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.write("watch.toml", config(3, target.local_addr().unwrap()));
    let mut daemon = Daemon::start(&path, &notify, None);

    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    assert_eq!(
        value(&ready, "STATUS"),
        Some("watching 3 targets"),
        "{ready:?}"
    );
    TcpStream::connect(daemon.listen).expect("READY=1 came before the listener was bound");

    std::fs::write(&path, config(4, target.local_addr().unwrap())).unwrap();
    let before = monotonic_usec();
    daemon.signal(libc::SIGHUP);
    let reloading = notify.next_not_ping(Duration::from_secs(10));
    let after = monotonic_usec();
    assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let stamp: u64 = value(&reloading, "MONOTONIC_USEC")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
    assert!(
        (before..=after).contains(&stamp),
        "MONOTONIC_USEC={stamp} is not CLOCK_MONOTONIC between the SIGHUP ({before}) and the message ({after})"
    );
    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    assert_eq!(
        value(&ready, "STATUS"),
        Some("watching 4 targets"),
        "{ready:?}"
    );

    daemon.signal(libc::SIGTERM);
    let stopping = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    assert_eq!(daemon.wait_exit(Duration::from_secs(10)), Some(0));
}

/// A reload whose config does not load still ends with READY=1 (the daemon goes on with
/// the fleet it had), and says so in STATUS.
#[test]
fn a_failed_reload_ends_ready_with_the_old_fleet() {
    let dir = TempDir::new("systemd-failed-reload");
    let notify = NotifySocket::at_path(&dir);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.write("watch.toml", config(2, target.local_addr().unwrap()));
    let daemon = Daemon::start(&path, &notify, None);
    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(
        value(&ready, "STATUS"),
        Some("watching 2 targets"),
        "{ready:?}"
    );

    std::fs::write(&path, "[[targets]]\nname = \"broken\"\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let reloading = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    let status = value(&ready, "STATUS").unwrap_or_default();
    assert!(
        status.starts_with("watching 2 targets") && status.contains("reload failed"),
        "{ready:?}"
    );
}

/// WATCHDOG_USEC=400000: a ping about every 200 ms, never more than 400 ms apart, while
/// no check is due (every target's interval is a minute).
#[test]
fn the_watchdog_is_pinged_at_half_its_period() {
    let dir = TempDir::new("systemd-watchdog");
    let notify = NotifySocket::at_path(&dir);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.write("watch.toml", config(1, target.local_addr().unwrap()));
    let _daemon = Daemon::start(&path, &notify, Some(400_000));
    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    let ready_at = Instant::now();

    let window = Duration::from_secs(3);
    let mut pings = Vec::new();
    while ready_at.elapsed() < window {
        let left = window.saturating_sub(ready_at.elapsed());
        match notify.messages.recv_timeout(left) {
            Ok((at, text)) => {
                assert_eq!(text, "WATCHDOG=1", "only pings after READY=1");
                pings.push(at);
            }
            Err(_) => break,
        }
    }
    // 15 at 200 ms; a loaded machine may delay a ping, never skip one.
    assert!(
        (11..=17).contains(&pings.len()),
        "{} pings in {window:?}, expected about 15",
        pings.len()
    );
    let mut last = ready_at;
    for &at in &pings {
        let gap = at - last;
        assert!(
            gap < Duration::from_millis(400),
            "{gap:?} between two pings: systemd would have restarted the daemon"
        );
        last = at;
    }
}

/// NOTIFY_SOCKET may name an abstract socket (`@...`), as systemd's own is.
#[test]
fn an_abstract_notify_socket_is_told_too() {
    let dir = TempDir::new("systemd-abstract");
    let name = format!("connhealth-test/notify/{}", std::process::id());
    let notify = NotifySocket::abstract_name(&name);
    let target = TcpListener::bind("127.0.0.1:0").unwrap();
    let path = dir.write("watch.toml", config(1, target.local_addr().unwrap()));
    let _daemon = Daemon::start(&path, &notify, None);
    let ready = notify.next_not_ping(Duration::from_secs(10));
    assert_eq!(ready, "READY=1\nSTATUS=watching 1 target");
}

/// `--version` names the git revision the binary was built from (build.rs).
#[test]
fn version_names_the_git_revision() {
    let expected = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned());
    for args in [&["--version"][..], &["watch", "--version"]] {
        let out = Command::new(env!("CARGO_BIN_EXE_connhealth"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        let name = if args.len() == 2 {
            "connhealth-watch"
        } else {
            "connhealth"
        };
        let version = env!("CARGO_PKG_VERSION");
        let prefix = format!("{name} {version} (git ");
        assert!(text.starts_with(&prefix), "{args:?}: {text:?}");
        let revision = text[prefix.len()..].trim_end().trim_end_matches(')');
        match &expected {
            // Cargo runs build.rs again when HEAD moves, so the binary is HEAD's.
            Some(head) => assert_eq!(
                revision.trim_end_matches("-dirty"),
                head,
                "{args:?}: {text:?}"
            ),
            None => assert_eq!(revision, "unknown", "{args:?}: {text:?}"),
        }
    }
}
