//! What every readiness backend of the prober's engine shares: the waker's token and the
//! conversion of a wait's timeout to the milliseconds `poll`, `epoll_wait` and `WSAPoll`
//! all take.

use std::time::Duration;

/// The token the engine's waker reports. Probe tokens are `index | generation << 32`
/// with an index far below `u32::MAX`, so they never collide with it.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;

/// Converts a wait timeout to milliseconds, rounding up so the engine never wakes before
/// a deadline (a wake that early would only loop), and capping at `i32::MAX`; `None`
/// (wait until woken) is -1, which every backend reads as "no timeout".
pub(crate) fn timeout_ms(timeout: Option<Duration>) -> i32 {
    match timeout {
        None => -1,
        Some(t) => {
            let ms = t.as_nanos().div_ceil(1_000_000);
            ms.min(i32::MAX as u128) as i32
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_timeouts_round_up() {
        assert_eq!(timeout_ms(Some(Duration::from_micros(1))), 1);
        assert_eq!(timeout_ms(Some(Duration::ZERO)), 0);
        assert_eq!(timeout_ms(None), -1);
        assert_eq!(timeout_ms(Some(Duration::MAX)), i32::MAX);
    }
}
