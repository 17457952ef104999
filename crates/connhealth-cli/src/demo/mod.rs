//! `connhealth demo`: one part per capability, each a few seconds against loopback servers
//! (and, for dead peers, a private network namespace when run as root).

use std::io;

mod check;
mod deadpeer;
mod pool;
mod probe;
pub(crate) mod watch;

/// Runs every part in order.
pub(crate) fn run() -> io::Result<()> {
    check::run()?;
    probe::run()?;
    pool::run()?;
    deadpeer::run()?;
    watch::run()?;
    Ok(())
}

/// Prints a part's heading.
pub(crate) fn heading(title: &str) {
    println!("\n== {title} ==\n");
}
