//! A cheap monotonic clock for the pool's fast path: [`CoarseTime`], read with
//! [`coarse_now`].
//!
//! The pool reads the clock on every checkout and every return (idle time, lifetime), and
//! `Instant::now()` would be a third of its whole get+put budget where the clock source is
//! slow. Idle timeouts and lifetimes are counted in seconds, so a clock that advances once
//! per scheduler tick costs nothing: each platform's `clock` module reads its coarse clock
//! (`CLOCK_MONOTONIC_COARSE` on Linux, `GetTickCount64` on Windows) and says its
//! resolution.

use std::time::Duration;

use super::platform::clock::coarse_nanos;
pub(crate) use super::platform::clock::coarse_resolution;

/// A point on the coarse clock: nanoseconds since an arbitrary fixed point (boot). A
/// plain integer, so that comparing two and adding a timeout are one instruction each.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CoarseTime(u64);

impl CoarseTime {
    /// `d` later; a span too long to count in 584 years saturates.
    pub(crate) fn add(self, d: Duration) -> CoarseTime {
        CoarseTime(
            self.0
                .saturating_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        )
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub(crate) fn since(self, earlier: CoarseTime) -> Duration {
        Duration::from_nanos(self.nanos_since(earlier))
    }

    /// The time from `earlier` to `self` in nanoseconds, zero if `earlier` is later.
    pub(crate) fn nanos_since(self, earlier: CoarseTime) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// The time now, at the coarse clock's resolution.
pub(crate) fn coarse_now() -> CoarseTime {
    CoarseTime(coarse_nanos())
}
