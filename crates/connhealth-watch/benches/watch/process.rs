//! What the kernel accounts to a process: its CPU time (every thread's user and system
//! time, `/proc/PID/stat`) and its resident memory (`/proc/PID/status`). Ours and each
//! peer are measured by the same functions, from outside, so neither side's figure
//! depends on how it counts itself.

use std::io;
use std::time::{Duration, Instant};

/// Kernel clock ticks per second, the unit of `utime` and `stime`.
fn ticks_per_second() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as u64
    } else {
        100
    }
}

/// The CPU time `pid` has used so far, all its threads together.
pub fn cpu(pid: u32) -> io::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    // After the `)`, field 0 is the state (stat's field 3), so utime (14) and stime (15)
    // are 11 and 12.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat has no field {i}")))
    };
    let ticks = field(11)? + field(12)?;
    Ok(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / ticks_per_second(),
    ))
}

/// A line of `/proc/PID/status` in kB (`VmRSS`, `VmHWM`), as bytes.
fn status_kb(pid: u32, key: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no {key}")))
}

/// The resident memory of `pid` now.
pub fn rss(pid: u32) -> io::Result<u64> {
    status_kb(pid, "VmRSS")
}

/// The most resident memory `pid` has had.
pub fn peak_rss(pid: u32) -> io::Result<u64> {
    status_kb(pid, "VmHWM")
}

/// Bytes as MiB, for the report.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// CPU used by one process over a stretch of wall time.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// CPU time used in the window.
    pub cpu: Duration,
    /// Wall time of the window.
    pub wall: Duration,
}

impl Window {
    /// Cores used on average.
    pub fn cores(&self) -> f64 {
        self.cpu.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// The start of a [`Window`]: the process's CPU time and the clock.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pid: u32,
    cpu: Duration,
    at: Instant,
}

impl Mark {
    /// Reads `pid`'s CPU time now.
    pub fn now(pid: u32) -> io::Result<Mark> {
        Ok(Mark {
            pid,
            cpu: cpu(pid)?,
            at: Instant::now(),
        })
    }

    /// The window from this mark to now.
    pub fn window(&self) -> io::Result<Window> {
        let cpu_now = cpu(self.pid)?;
        Ok(Window {
            cpu: cpu_now.saturating_sub(self.cpu),
            wall: self.at.elapsed(),
        })
    }
}
