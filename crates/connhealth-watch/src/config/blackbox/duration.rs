//! A module's `timeout` as blackbox 0.23 reads it: a Go `time.Duration`, which yaml.v3
//! reads from a string with Go's `time.ParseDuration` (and refuses as a bare number).
//!
//! Go's syntax is not humantime's: it takes fractions (`1.5s`), `us`/`µs`, a sign and a
//! bare `0`, and no unit longer than the hour (`1d` is an error), while humantime takes
//! days, weeks and spaces (`1h 30m`) and no fraction. Both read `5s`, `500ms`, `1m30s` and
//! `1h30m`. This is Go's, rule for rule, so that what blackbox loads loads here the same.

use std::time::Duration;

/// A parsed duration: Go's is signed, and blackbox reads zero or less as "unset".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration {
    /// Written with a leading `-` (and not zero).
    pub(crate) negative: bool,
    /// The magnitude, in nanoseconds (at most 2^63).
    pub(crate) nanos: u64,
}

impl GoDuration {
    /// The duration when it is longer than zero.
    pub(crate) fn positive(self) -> Option<Duration> {
        (!self.negative && self.nanos > 0).then(|| Duration::from_nanos(self.nanos))
    }
}

const EXAMPLE: &str = "write e.g. timeout: 5s, 1m30s or 500ms";

/// The message for a duration written as a bare number.
pub(crate) fn bare_number(number: &str) -> String {
    format!(
        "timeout {number} has no unit (blackbox reads a Go duration and refuses a bare number); write it with a unit, e.g. timeout: {number}s or timeout: 500ms"
    )
}

/// `time.ParseDuration`: `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`, or `0`.
pub(crate) fn parse(text: &str) -> Result<GoDuration, String> {
    let invalid = || format!("timeout {text:?} is not a duration; {EXAMPLE}");
    let too_long = || {
        format!("timeout {text:?} is longer than a Go duration holds (about 292 years); {EXAMPLE}")
    };
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some((&sign @ (b'-' | b'+'), rest)) = s.split_first() {
        negative = sign == b'-';
        s = rest;
    }
    if s == b"0" {
        return Ok(GoDuration {
            negative: false,
            nanos: 0,
        });
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // The whole part.
        let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &digit in &s[..digits] {
            if whole > LIMIT / 10 {
                return Err(too_long());
            }
            whole = whole * 10 + u64::from(digit - b'0');
            if whole > LIMIT {
                return Err(too_long());
            }
        }
        s = &s[digits..];
        // The fraction: digits past what fits are dropped, as Go drops them.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            fraction_digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
            let mut overflow = false;
            for &digit in &s[..fraction_digits] {
                if overflow {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(digit - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            s = &s[fraction_digits..];
        }
        if digits == 0 && fraction_digits == 0 {
            return Err(invalid()); // ".s"
        }
        // The unit: everything up to the next number.
        let unit_len = s
            .iter()
            .take_while(|&&b| b != b'.' && !b.is_ascii_digit())
            .count();
        if unit_len == 0 {
            return Err(format!(
                "timeout {text:?} has no unit; write it with one (h, m, s, ms, us or ns), e.g. timeout: 5s"
            ));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let nanos_per: u64 = match unit {
            b"ns" => 1,
            // `µs` with U+00B5 (micro sign) or U+03BC (Greek mu), as Go takes both.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60 * 1_000_000_000,
            b"h" => 3600 * 1_000_000_000,
            _ => {
                let unit = String::from_utf8_lossy(unit);
                return Err(format!(
                    "timeout {text:?} has the unit {unit:?}, which a Go duration does not have (blackbox 0.23 reads Go's: h, m, s, ms, us, ns); write e.g. timeout: 5s or 1m30s"
                ));
            }
        };
        if whole > LIMIT / nanos_per {
            return Err(too_long());
        }
        let mut value = whole * nanos_per;
        if fraction > 0 {
            // As Go: float64(f) * (float64(unit) / scale), truncated.
            value += (fraction as f64 * (nanos_per as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(too_long());
            }
        }
        total = total.saturating_add(value);
        if total > LIMIT {
            return Err(too_long());
        }
    }
    if !negative && total > LIMIT - 1 {
        return Err(too_long());
    }
    Ok(GoDuration {
        negative: negative && total > 0,
        nanos: total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nanos(text: &str) -> Result<(bool, u64), String> {
        parse(text).map(|d| (d.negative, d.nanos))
    }

    #[test]
    fn go_durations_read_as_go_reads_them() {
        const S: u64 = 1_000_000_000;
        assert_eq!(nanos("5s"), Ok((false, 5 * S)));
        assert_eq!(nanos("500ms"), Ok((false, S / 2)));
        assert_eq!(nanos("1m30s"), Ok((false, 90 * S)));
        assert_eq!(nanos("1h30m"), Ok((false, 5400 * S)));
        assert_eq!(nanos("1.5s"), Ok((false, 3 * S / 2)));
        assert_eq!(nanos(".5s"), Ok((false, S / 2)));
        assert_eq!(nanos("1.s"), Ok((false, S)));
        assert_eq!(nanos("10µs"), Ok((false, 10_000)));
        assert_eq!(nanos("10μs"), Ok((false, 10_000)));
        assert_eq!(nanos("10us1ns"), Ok((false, 10_001)));
        assert_eq!(nanos("0"), Ok((false, 0)));
        assert_eq!(nanos("-0"), Ok((false, 0)));
        assert_eq!(nanos("+2s"), Ok((false, 2 * S)));
        assert_eq!(nanos("-2s"), Ok((true, 2 * S)));
        assert_eq!(
            nanos("2562047h47m16.854775807s"),
            Ok((false, (1 << 63) - 1))
        );
        assert_eq!(nanos("-2562047h47m16.854775808s"), Ok((true, 1 << 63)));
        assert_eq!(
            parse("1m30s").unwrap().positive(),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse("-1s").unwrap().positive(), None);
        assert_eq!(parse("0s").unwrap().positive(), None);
    }

    #[test]
    fn what_go_refuses_is_refused_with_a_fix() {
        for bad in [
            "", "s", ".s", "-", "1", "5 s", "1.2.3s", "x5s", "5s ", " 5s",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains("timeout"), "{bad:?}: {err}");
            assert!(err.contains("e.g."), "{bad:?}: {err}");
        }
        assert!(parse("1d").unwrap_err().contains("unit \"d\""));
        assert!(parse("3000000h").unwrap_err().contains("292 years"));
        assert!(parse("2562047h47m16.854775808s")
            .unwrap_err()
            .contains("292 years"));
        assert!(parse("99999999999999999999ns")
            .unwrap_err()
            .contains("292 years"));
    }
}
