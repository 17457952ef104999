//! `connhealth demo`: one part per capability, each a few seconds against loopback servers
//! (and, for dead peers, a private network namespace when run as root).
//!
//! On Windows the check, probe and pool parts run as on Linux; the dead-peer part shows
//! the policy's settings and skips making a peer vanish (a network namespace and iptables
//! are Linux's; other Unix skip it too), and the watch part is skipped (the daemon runs on Unix only). Each skip
//! prints one line saying why.

use std::io;

mod check;
mod deadpeer;
mod pool;
mod probe;
#[cfg(target_os = "linux")]
mod support;
#[cfg(unix)]
pub(crate) mod watch;

/// Runs every part in order.
pub(crate) fn run() -> io::Result<()> {
    check::run()?;
    probe::run()?;
    pool::run()?;
    deadpeer::run()?;
    #[cfg(unix)]
    watch::run()?;
    #[cfg(not(unix))]
    {
        heading("connhealth watch: a server killed, then restarted");
        println!(
            "skipped: needs Linux (or other Unix): the watch daemon runs there only, and this \
             part kills its server with SIGKILL"
        );
    }
    Ok(())
}

/// Prints a part's heading.
pub(crate) fn heading(title: &str) {
    println!("\n== {title} ==\n");
}
