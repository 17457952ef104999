//! Small helpers with one home each: deadlines that cannot overflow, and the crate's one
//! random number generator.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::ops::Add;
use std::time::Duration;

use crate::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A timeout this long stands for "never". Thirty years is past any process's life, and
/// far enough below the monotonic clock's range that adding it to now cannot overflow.
pub(crate) const FAR_FUTURE: Duration = Duration::from_secs(30 * 365 * 86_400);

/// `timeout` after `now`, for `std` and tokio instants alike. A huge timeout (a caller's
/// `Duration::MAX`) means "never", not an overflow.
pub(crate) fn deadline_after<I: Add<Duration, Output = I>>(now: I, timeout: Duration) -> I {
    now + timeout.min(FAR_FUTURE)
}

/// SplitMix64's increment (2^64 / φ) and output mix. It is small, has no dependency, and
/// passes BigCrush: good enough for jitter, which is all the crate draws numbers for.
const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform number in `[0, 1)` from 53 random bits.
fn unit(bits: u64) -> f64 {
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

/// A seed that differs between processes and between calls: the hasher keys std draws
/// from the OS.
fn seed() -> u64 {
    RandomState::new().hash_one(0u8)
}

/// SplitMix64 owned by one user (a heartbeat's jitter).
#[derive(Debug)]
pub(crate) struct SplitMix64(u64);

impl SplitMix64 {
    pub(crate) fn new() -> SplitMix64 {
        SplitMix64(seed())
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GAMMA);
        mix(self.0)
    }

    /// A random duration in `[0, of)`.
    pub(crate) fn fraction_of(&mut self, of: Duration) -> Duration {
        of.mul_f64(unit(self.next_u64()))
    }
}

/// SplitMix64 shared between threads without a lock: each draw advances the state with
/// one `fetch_add`, so concurrent draws get distinct numbers (a pool's lifetime jitter).
#[derive(Debug)]
pub(crate) struct SharedSplitMix64(AtomicU64);

impl SharedSplitMix64 {
    pub(crate) fn new() -> SharedSplitMix64 {
        SharedSplitMix64(AtomicU64::new(seed()))
    }

    /// A uniform number in `[0, 1)`.
    pub(crate) fn unit(&self) -> f64 {
        unit(mix(self.0.fetch_add(GAMMA, Relaxed).wrapping_add(GAMMA)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_timeout_is_far_off_not_an_overflow() {
        let now = std::time::Instant::now();
        assert_eq!(deadline_after(now, Duration::MAX), now + FAR_FUTURE);
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        let now = tokio::time::Instant::now();
        assert_eq!(deadline_after(now, Duration::MAX), now + FAR_FUTURE);
    }

    #[test]
    fn draws_are_uniform_in_the_unit_interval() {
        let shared = SharedSplitMix64::new();
        let mut own = SplitMix64::new();
        let draws: Vec<f64> = (0..10_000)
            .map(|i| {
                if i % 2 == 0 {
                    shared.unit()
                } else {
                    own.fraction_of(Duration::from_secs(1)).as_secs_f64()
                }
            })
            .collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }
}
