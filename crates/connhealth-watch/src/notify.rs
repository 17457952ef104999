//! systemd's notification protocol, for `Type=notify` and `WatchdogSec=`: written against
//! sd_notify(3) rather than through libsystemd or a crate, as it is one datagram.
//!
//! A service manager that wants to hear from the daemon puts the address of an `AF_UNIX`
//! datagram socket in `$NOTIFY_SOCKET`: a path, or an abstract name written with a
//! leading `@` (Linux). Each message is one datagram of newline-separated `KEY=VALUE`
//! lines. `$WATCHDOG_USEC` asks for `WATCHDOG=1` at least that often (the daemon pings at
//! half of it), and `$WATCHDOG_PID`, when set, says which process it asks that of.
//! Without `$NOTIFY_SOCKET` every call here does nothing.
//!
//! A leaf: it imports no stage. The daemon (`daemon.rs`) says what to send and when:
//! `READY=1` once the config is loaded and the listener bound, `RELOADING=1` and
//! `READY=1` around each reload, `WATCHDOG=1` while the scheduler makes progress,
//! `STOPPING=1` at shutdown, and `STATUS=` with the number of targets watched.

use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Longest a send may block when the service manager's socket is full, so that a stuck
/// manager cannot hold up the daemon's shutdown or its HTTP thread for long.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Where notifications go: the service manager's socket, when the environment named one.
#[derive(Debug)]
pub struct Notifier {
    socket: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`. Without a socket (or
    /// with one that cannot be used, which is logged once) the notifier does nothing.
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|name| {
            let name = name.to_string_lossy().into_owned();
            match connect(&name) {
                Ok(socket) => Some(socket),
                Err(err) => {
                    tracing::warn!("NOTIFY_SOCKET={name} cannot be used ({err}); systemd will not hear from the daemon");
                    None
                }
            }
        });
        let watchdog = watchdog_from(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        Notifier {
            watchdog: socket.as_ref().and(watchdog),
            socket,
        }
    }

    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier {
            socket: None,
            watchdog: None,
        }
    }

    /// True when a service manager listens.
    pub fn is_listened_to(&self) -> bool {
        self.socket.is_some()
    }

    /// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, as sd_watchdog_enabled(3)
    /// advises; `None` when no watchdog was asked for (or it was for another process).
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|usec| usec / 2)
    }

    /// `READY=1`: started (or done reloading), with `status` as `STATUS=`.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", one_line(status)));
    }

    /// `RELOADING=1` with `MONOTONIC_USEC=` now: a reload begins. [`Notifier::ready`]
    /// says it ended.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            crate::sys::monotonic_usec()
        ));
    }

    /// `STOPPING=1`: shutting down.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }

    /// `WATCHDOG=1`: alive, and making progress.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STATUS=`, alone.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    fn send(&self, message: &str) {
        let Some((socket, address)) = &self.socket else {
            return;
        };
        if let Err(err) = socket.send_to_addr(message.as_bytes(), address) {
            let first = message.lines().next().unwrap_or_default();
            tracing::warn!("cannot tell systemd {first}: {err}");
        }
    }
}

/// An unbound datagram socket and the address of `name`: a path, or `@` and an abstract
/// name.
fn connect(name: &str) -> io::Result<(UnixDatagram, SocketAddr)> {
    let address = address_of(name)?;
    let socket = UnixDatagram::unbound()?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    Ok((socket, address))
}

fn address_of(name: &str) -> io::Result<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            use std::os::linux::net::SocketAddrExt;
            return SocketAddr::from_abstract_name(abstract_name.as_bytes());
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = abstract_name;
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "abstract socket names are Linux's",
            ));
        }
    }
    if !name.starts_with('/') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@...)",
        ));
    }
    SocketAddr::from_pathname(name)
}

/// The watchdog timeout `$WATCHDOG_USEC` asks for, when it is for this process
/// (`$WATCHDOG_PID` unset or `pid`). sd_watchdog_enabled(3) reads them the same way.
fn watchdog_from(usec: Option<&str>, for_pid: Option<&str>, pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&usec| usec > 0)?;
    if let Some(for_pid) = for_pid {
        if for_pid.trim().parse::<u32>().ok() != Some(pid) {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

/// `STATUS=` is one line: a newline would start another assignment.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

/// Decides each watchdog tick whether to ping: only when the scheduler's count of turns
/// has moved since the last tick. A scheduler that is stuck (a check blocking its thread,
/// a deadlock) stops the pings, and systemd restarts the daemon.
#[derive(Debug)]
pub struct WatchdogGate {
    last: u64,
}

impl WatchdogGate {
    /// Starts from the count of turns seen now.
    pub fn new(turns: u64) -> WatchdogGate {
        WatchdogGate { last: turns }
    }

    /// True when `turns` moved since the last call (or since [`WatchdogGate::new`]).
    pub fn advanced(&mut self, turns: u64) -> bool {
        let moved = turns != self.last;
        self.last = turns;
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchdog_is_for_this_process_only() {
        let half = Duration::from_millis(200);
        assert_eq!(watchdog_from(Some("400000"), None, 7), Some(half * 2));
        assert_eq!(watchdog_from(Some("400000"), Some("7"), 7), Some(half * 2));
        assert_eq!(watchdog_from(Some("400000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
    }

    #[test]
    fn the_gate_opens_only_on_progress() {
        let mut gate = WatchdogGate::new(5);
        assert!(!gate.advanced(5), "no turn since the start");
        assert!(gate.advanced(6));
        assert!(!gate.advanced(6), "no turn since the last ping");
        assert!(gate.advanced(9));
    }

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address_of("/run/systemd/notify").is_ok());
        assert!(address_of("run/systemd/notify").is_err());
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let address = address_of("@connhealth/notify").unwrap();
            assert_eq!(address.as_abstract_name(), Some(&b"connhealth/notify"[..]));
        }
    }

    #[test]
    fn a_status_stays_one_line() {
        assert_eq!(one_line("a\nb\rc"), "a b c");
    }

    /// One datagram per message, `KEY=VALUE` lines, to a socket bound at a path.
    #[test]
    fn messages_reach_a_socket_at_a_path() {
        let dir = std::env::temp_dir().join(format!("connhealth-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let notifier = Notifier {
            socket: Some(connect(path.to_str().unwrap()).unwrap()),
            watchdog: None,
        };
        notifier.ready("watching 3 targets");
        notifier.reloading();
        let mut buf = [0u8; 512];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=watching 3 targets");
        let n = listener.recv(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("RELOADING=1"));
        let usec: u64 = lines
            .next()
            .and_then(|l| l.strip_prefix("MONOTONIC_USEC="))
            .and_then(|v| v.parse().ok())
            .expect("MONOTONIC_USEC=<microseconds>");
        let now = crate::sys::monotonic_usec();
        assert!(
            usec <= now && now - usec < 5_000_000,
            "{usec} against {now}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn without_a_socket_nothing_is_sent() {
        let notifier = Notifier::none();
        assert!(!notifier.is_listened_to());
        assert_eq!(notifier.watchdog_period(), None);
        notifier.ready("nothing");
    }
}
