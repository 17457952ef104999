//! The bench's own network namespace, and the SYNs on its wire.
//!
//! Checks are counted where every checker's checks look the same: on the wire, as the
//! SYNs that arrive on the namespace's loopback interface. An iptables rule with no
//! target in the namespace's INPUT chain (`-i lo -p tcp --tcp-flags SYN,ACK SYN`, which
//! matches a SYN without an ACK, so not the SYN-ACKs) counts them, and
//! `iptables -nvxL INPUT` reads its packet counter.
//!
//! Why there: HAProxy's connect-only check is half-open, like ours, so its checks never
//! reach a listener's `accept()` and cannot be counted there, and its stats count
//! failures, not checks. The kernel's `Tcp: ActiveOpens` (`/proc/net/snmp`) counts only
//! the SYNs of `connect()`, so it sees HAProxy's checks and our socket engine's, but not
//! one SYN of our raw engine, which builds its SYNs itself and sends them from a raw
//! socket. Every SYN, from `connect()` or a raw socket, by any checker, passes the INPUT
//! chain of the namespace it is delivered in, once (a retransmitted SYN counts again:
//! it is on the wire again). In a namespace of its own, where one checker runs at a time
//! and the bench opens no connection inside a window, the counter is exactly the SYNs
//! the checker in the window sent, and no other program on the machine adds to it.

use std::io;
use std::process::Command;

/// The comment that marks the counting rule, to find its line in the listing.
const SYN_RULE: &str = "connhealth-bench-syns";

/// Moves this process (and every thread and child it starts from now on) into a new
/// network namespace with only a loopback interface, brings it up, and installs the
/// rule that counts SYNs ([`syns`]). Needs root; call it before any thread starts.
pub fn isolate() -> io::Result<()> {
    // SAFETY: unshare has no memory effects; with CLONE_NEWNET it gives the calling
    // thread (the only one yet) a fresh network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    run("ip", &["link", "set", "lo", "up"])?;
    // No `-j`: the rule only counts, and every packet goes on through the chain.
    run(
        "iptables",
        &[
            "-w",
            "-I",
            "INPUT",
            "-i",
            "lo",
            "-p",
            "tcp",
            "--tcp-flags",
            "SYN,ACK",
            "SYN",
            "-m",
            "comment",
            "--comment",
            SYN_RULE,
        ],
    )?;
    syns().map(drop)
}

fn run(program: &str, args: &[&str]) -> io::Result<()> {
    let output = Command::new(program).args(args).output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{program} {}: {}: {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// SYNs (without ACK) delivered on loopback in this namespace so far: every checker's
/// checks, whatever sends them (see the module docs).
pub fn syns() -> io::Result<u64> {
    let output = Command::new("iptables")
        .args(["-w", "-nvxL", "INPUT"])
        .output()?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "iptables -nvxL INPUT: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let listing = String::from_utf8_lossy(&output.stdout);
    listing
        .lines()
        .find(|line| line.contains(SYN_RULE))
        .and_then(|line| line.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| {
            io::Error::other(format!(
                "iptables -nvxL INPUT lists no counted rule {SYN_RULE:?}:\n{listing}"
            ))
        })
}
