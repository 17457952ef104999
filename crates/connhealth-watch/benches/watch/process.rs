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
    cpu_of_stat(&stat).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

/// utime + stime of a `stat` line (a process's or one thread's).
fn cpu_of_stat(stat: &str) -> Option<Duration> {
    // The command name is in parentheses and may hold spaces: count fields after it.
    // After the `)`, field 0 is the state (stat's field 3), so utime (14) and stime (15)
    // are 11 and 12.
    let (_, after) = stat.rsplit_once(')')?;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Duration::from_nanos(
        (utime + stime).saturating_mul(1_000_000_000) / ticks_per_second(),
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

/// CPU time of each thread of `pid` now, by thread name (`comm`), summed over threads of
/// the same name.
pub fn threads(pid: u32) -> io::Result<Vec<(String, Duration)>> {
    let mut by_name: Vec<(String, Duration)> = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let task = task?.path();
        let (Ok(comm), Ok(stat)) = (
            std::fs::read_to_string(task.join("comm")),
            std::fs::read_to_string(task.join("stat")),
        ) else {
            continue; // the thread exited meanwhile
        };
        let Some(cpu) = cpu_of_stat(&stat) else {
            continue;
        };
        let name = comm.trim().to_owned();
        match by_name.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += cpu,
            None => by_name.push((name, cpu)),
        }
    }
    Ok(by_name)
}

/// The CPU each thread name used between two [`threads`] readings, busiest first, as
/// `name 0.42` (cores over `wall`).
pub fn thread_cores(
    before: &[(String, Duration)],
    after: &[(String, Duration)],
    wall: Duration,
) -> String {
    let mut used: Vec<(&str, f64)> = after
        .iter()
        .map(|(name, cpu)| {
            let earlier = before
                .iter()
                .find(|(n, _)| n == name)
                .map_or(Duration::ZERO, |(_, c)| *c);
            (
                name.as_str(),
                cpu.saturating_sub(earlier).as_secs_f64() / wall.as_secs_f64().max(1e-9),
            )
        })
        .filter(|(_, cores)| *cores >= 0.005)
        .collect();
    used.sort_by(|a, b| b.1.total_cmp(&a.1));
    used.iter()
        .map(|(name, cores)| format!("{name} {cores:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
