//! A cheap monotonic clock for the pool's fast path.
//!
//! `Instant::now()` reads `CLOCK_MONOTONIC` through the vDSO: ~20 ns with a TSC clock
//! source, far more under a hypervisor without one. The pool reads the clock on every
//! checkout and every return (idle time, lifetime), so that cost would be a third of its
//! whole get+put budget. Linux's `CLOCK_MONOTONIC_COARSE` returns the time of the last
//! scheduler tick (1-4 ms resolution) for a few nanoseconds and never enters the kernel;
//! idle timeouts and lifetimes are counted in seconds, so the resolution costs nothing.
//! Elsewhere the precise clock is used.

use std::time::Duration;

#[cfg(target_os = "linux")]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC_COARSE;
#[cfg(not(target_os = "linux"))]
const CLOCK: libc::clockid_t = libc::CLOCK_MONOTONIC;

/// Nanoseconds since boot, at the coarse clock's resolution.
pub(crate) fn coarse_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec that outlives the call, and CLOCK is a
    // clock id every supported kernel knows, so the call only writes `ts`.
    let rc = unsafe { libc::clock_gettime(CLOCK, &mut ts) };
    if rc != 0 {
        // Cannot happen with a valid clock id and pointer; a zero time only makes every
        // deadline look far away, never a connection look expired.
        return 0;
    }
    // Both fields are non-negative for a monotonic clock; u64 nanoseconds last 584 years.
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// How far [`coarse_nanos`] can lag the precise clock: its resolution (one scheduler tick
/// on Linux), never less than a microsecond nor more than a tenth of a second.
pub(crate) fn coarse_resolution() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: as in `coarse_now`: a valid, writable timespec and a known clock id.
    let rc = unsafe { libc::clock_getres(CLOCK, &mut ts) };
    let res = if rc == 0 {
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    } else {
        // Cannot happen; assume the slowest tick Linux is built with (100 Hz).
        Duration::from_millis(10)
    };
    res.clamp(Duration::from_micros(1), Duration::from_millis(100))
}
