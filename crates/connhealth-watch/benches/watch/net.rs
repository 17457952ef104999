//! The bench's own network namespace, and the kernel's TCP counters in it.
//!
//! HAProxy's connect-only check is half-open, like ours (TCP_QUICKACK off, then an RST
//! before the ACK leaves), so its checks never reach a listener's `accept()` and cannot
//! be counted there; its stats count failures, not checks. The kernel counts every
//! `connect()` SYN in `/proc/net/snmp` (`Tcp: ActiveOpens`). In a namespace of its own,
//! where only one checker runs at a time, that counter is exactly the checks the checker
//! in the window made, ours and the peers' alike: the same count for both sides, taken
//! from the wire, and no other program on the machine adds to it.

use std::io;
use std::process::Command;

/// Moves this process (and every thread and child it starts from now on) into a new
/// network namespace with only a loopback interface, and brings it up. Needs root; call
/// it before any thread starts.
pub fn isolate() -> io::Result<()> {
    // SAFETY: unshare has no memory effects; with CLONE_NEWNET it gives the calling
    // thread (the only one yet) a fresh network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let status = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("ip link set lo up: {status}")))
    }
}

/// `Tcp: ActiveOpens`: SYNs sent by `connect()` in this namespace so far.
pub fn active_opens() -> io::Result<u64> {
    let snmp = std::fs::read_to_string("/proc/net/snmp")?;
    let mut tcp = snmp.lines().filter(|line| line.starts_with("Tcp:"));
    let (names, values) = (tcp.next(), tcp.next());
    let (Some(names), Some(values)) = (names, values) else {
        return Err(io::Error::other("/proc/net/snmp has no Tcp lines"));
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "ActiveOpens")
        .and_then(|(_, value)| value.parse().ok())
        .ok_or_else(|| io::Error::other("/proc/net/snmp has no ActiveOpens"))
}
