//! Durations as a person reads them, in failure reasons and log lines.
//!
//! A check is given what is left of its timeout once its name is resolved, and its time
//! is measured to the nanosecond, so `{:?}` prints `4.999999409s` and `412.301µs`: digits
//! nobody acts on, and a timeout the user never wrote. Every duration a person reads goes
//! through [`Rounded`]; numbers for machines (metrics, `/status`, JSON fields) stay exact.

use std::fmt;
use std::time::Duration;

/// A duration rounded to what its size deserves: from a second up, to the millisecond and
/// written as the config writes durations (`5s`, `1s 500ms`, `1m 30s`); below, in
/// milliseconds to two or three significant digits (`300ms`, `12.3ms`, `0.4ms`,
/// `0.05ms`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rounded(pub(crate) Duration);

impl fmt::Display for Rounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // 999.5 ms and more round to a whole second: `1s`, never `1000ms`.
        if self.0 >= Duration::from_micros(999_500) {
            let millis = (self.0.as_nanos() + 500_000) / 1_000_000;
            let rounded = Duration::from_millis(u64::try_from(millis).unwrap_or(u64::MAX));
            return write!(f, "{}", humantime::format_duration(rounded));
        }
        let ms = self.0.as_secs_f64() * 1e3;
        let digits = match ms {
            _ if ms < 0.01 => format!("{ms:.3}"),
            _ if ms < 0.1 => format!("{ms:.2}"),
            _ if ms < 100.0 => format!("{ms:.1}"),
            _ => format!("{ms:.0}"),
        };
        // `5ms`, not `5.0ms`; `0ms` for what rounds to nothing.
        let digits = if digits.contains('.') {
            digits.trim_end_matches('0').trim_end_matches('.')
        } else {
            &digits
        };
        write!(f, "{digits}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(nanos: u64) -> String {
        Rounded(Duration::from_nanos(nanos)).to_string()
    }

    #[test]
    fn timeouts_read_as_they_were_written() {
        assert_eq!(shown(4_999_999_409), "5s");
        assert_eq!(shown(299_999_409), "300ms");
        assert_eq!(shown(999_600_000), "1s");
        assert_eq!(shown(1_500_000_000), "1s 500ms");
        assert_eq!(shown(90_000_400_000), "1m 30s");
        assert_eq!(shown(250_000_000), "250ms");
    }

    #[test]
    fn check_times_keep_their_significant_digits() {
        assert_eq!(shown(0), "0ms");
        assert_eq!(shown(300), "0ms");
        assert_eq!(shown(1_000), "0.001ms");
        assert_eq!(shown(50_000), "0.05ms");
        assert_eq!(shown(412_301), "0.4ms");
        assert_eq!(shown(5_000_000), "5ms");
        assert_eq!(shown(12_340_000), "12.3ms");
        assert_eq!(shown(123_400_000), "123ms");
    }
}
