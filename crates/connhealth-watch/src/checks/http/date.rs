//! HTTP dates as Go's `http.ParseTime` reads them, for `Last-Modified`
//! (blackbox's `probe_http_last_modified_timestamp_seconds`): the first of Go's three
//! layouts that parses, by Go's `time.Parse` rules.
//!
//! - `Mon, 02 Jan 2006 15:04:05 GMT` (RFC 1123 as RFC 9110 fixes it, `GMT` literal);
//! - `Monday, 02-Jan-06 15:04:05 MST` (RFC 850: a two-digit year is 19xx from 69 on,
//!   20xx below; any zone abbreviation Go takes, which does not move the instant: Go
//!   records an unknown abbreviation with a zero offset, and blackbox runs in UTC);
//! - `Mon Jan _2 15:04:05 2006` (ANSI C's `asctime`, the day padded with a space).
//!
//! As Go: day and month names in any case, the weekday read but never checked against
//! the date, the hour in one or two digits, a run of spaces where the layout has one,
//! a fraction after the seconds ignored, the day checked against its month; nothing
//! may follow.

/// One piece of a Go layout.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// Text that must be there (a space matches a run of spaces).
    Text(&'static str),
    /// `Mon`.
    ShortWeekday,
    /// `Monday`.
    LongWeekday,
    /// `02`: two digits.
    ZeroDay,
    /// `_2`: one or two digits, after an optional space.
    UnderDay,
    /// `Jan`.
    Month,
    /// `2006`.
    LongYear,
    /// `06`.
    Year,
    /// `15`: one or two digits.
    Hour,
    /// `04`.
    Minute,
    /// `05`, and a fraction Go skips.
    Second,
    /// `MST`.
    Zone,
}

use Piece::*;

/// Go's `http.TimeFormat`, `time.RFC850` and `time.ANSIC`, in `http.ParseTime`'s order.
const LAYOUTS: [&[Piece]; 3] = [
    &[
        ShortWeekday,
        Text(", "),
        ZeroDay,
        Text(" "),
        Month,
        Text(" "),
        LongYear,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" GMT"),
    ],
    &[
        LongWeekday,
        Text(", "),
        ZeroDay,
        Text("-"),
        Month,
        Text("-"),
        Year,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" "),
        Zone,
    ],
    &[
        ShortWeekday,
        Text(" "),
        Month,
        Text(" "),
        UnderDay,
        Text(" "),
        Hour,
        Text(":"),
        Minute,
        Text(":"),
        Second,
        Text(" "),
        LongYear,
    ],
];

const SHORT_DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `value` (a header's bytes, its surrounding blanks ignored, as Go's reader trims them)
/// in Unix seconds, or `None` when no layout parses it.
pub(super) fn parse_http_time(value: &[u8]) -> Option<i64> {
    let value = value.trim_ascii();
    LAYOUTS.iter().find_map(|layout| parse(layout, value))
}

/// What a layout read.
#[derive(Debug, Default)]
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

fn parse(layout: &[Piece], mut value: &[u8]) -> Option<i64> {
    let mut f = Fields::default();
    for piece in layout {
        value = match *piece {
            Text(text) => skip(value, text.as_bytes())?,
            ShortWeekday => lookup(&SHORT_DAYS, value)?.1,
            LongWeekday => lookup(&LONG_DAYS, value)?.1,
            Month => {
                let (index, rest) = lookup(&MONTHS, value)?;
                f.month = index as i64 + 1;
                rest
            }
            ZeroDay => number(value, true, &mut f.day)?,
            UnderDay => {
                let value = value.strip_prefix(b" ").unwrap_or(value);
                number(value, false, &mut f.day)?
            }
            LongYear => {
                let digits = value.get(..4)?;
                if !digits.iter().all(u8::is_ascii_digit) {
                    return None;
                }
                f.year = digits_value(digits)?;
                &value[4..]
            }
            Year => {
                let (year, rest) = (go_atoi(value.get(..2)?)?, &value[2..]);
                f.year = if year >= 69 { year + 1900 } else { year + 2000 };
                rest
            }
            Hour => number(value, false, &mut f.hour).filter(|_| f.hour < 24)?,
            Minute => number(value, true, &mut f.minute).filter(|_| f.minute < 60)?,
            Second => {
                let rest = number(value, true, &mut f.second).filter(|_| f.second < 60)?;
                fraction(rest)?
            }
            Zone => zone(value)?,
        };
    }
    if !value.is_empty() {
        return None;
    }
    if f.day < 1 || f.day > days_in(f.month, f.year) {
        return None;
    }
    let days = days_from_civil(f.year, f.month, f.day);
    Some(days * 86_400 + f.hour * 3_600 + f.minute * 60 + f.second)
}

/// Go's `skip`: `text` at the start of `value`, a space in it matching any run of
/// spaces (none at the end of `value`).
fn skip<'v>(mut value: &'v [u8], mut text: &[u8]) -> Option<&'v [u8]> {
    while let Some((&first, rest)) = text.split_first() {
        if first == b' ' {
            if value.first().is_some_and(|&b| b != b' ') {
                return None;
            }
            text = trim_spaces(text);
            value = trim_spaces(value);
            continue;
        }
        if value.first() != Some(&first) {
            return None;
        }
        text = rest;
        value = &value[1..];
    }
    Some(value)
}

fn trim_spaces(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
    &bytes[start..]
}

/// Go's `lookup`: the first name `value` starts with, in any case.
fn lookup<'v>(names: &[&str], value: &'v [u8]) -> Option<(usize, &'v [u8])> {
    names.iter().enumerate().find_map(|(index, name)| {
        let head = value.get(..name.len())?;
        head.eq_ignore_ascii_case(name.as_bytes())
            .then(|| (index, &value[name.len()..]))
    })
}

/// Go's `getnum`: one or two digits (two when `fixed`) into `into`.
fn number<'v>(value: &'v [u8], fixed: bool, into: &mut i64) -> Option<&'v [u8]> {
    let digit = |at: usize| {
        value
            .get(at)
            .filter(|b| b.is_ascii_digit())
            .map(|b| i64::from(b - b'0'))
    };
    let first = digit(0)?;
    match digit(1) {
        Some(second) => {
            *into = first * 10 + second;
            Some(&value[2..])
        }
        None if fixed => None,
        None => {
            *into = first;
            Some(&value[1..])
        }
    }
}

/// Go's `atoi` on a short field: an optional sign, then digits only.
fn go_atoi(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let value = digits_value(digits)?;
    Some(if negative { -value } else { value })
}

/// Digits only, at least one, as a number.
fn digits_value(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0_i64, |n, &b| {
        n.checked_mul(10)?.checked_add(i64::from(b - b'0'))
    })
}

/// A fraction Go reads after the seconds when the layout has none: `.` or `,` and
/// digits, below a second's nanoseconds. Nothing to skip is fine.
fn fraction(value: &[u8]) -> Option<&[u8]> {
    let starts =
        matches!(value.first(), Some(b'.' | b',')) && value.get(1).is_some_and(u8::is_ascii_digit);
    if !starts {
        return Some(value);
    }
    let end = 1 + value[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    match digits_value(&value[1..end]) {
        Some(nanos) if nanos < 1_000_000_000 => Some(&value[end..]),
        _ => None,
    }
}

/// Go's zone abbreviation (`stdTZ`): `UTC`; `ChST` or `MeST`; `GMT` with an optional
/// `+h`/`-h` up to 23; a `+hh`/`-hh` offset; or 3 capitals, 4 ending in `T` (or
/// `WITA`), 5 ending in `T`.
fn zone(value: &[u8]) -> Option<&[u8]> {
    if value.starts_with(b"UTC") {
        return Some(&value[3..]);
    }
    if value.len() < 3 {
        return None;
    }
    if value.starts_with(b"ChST") || value.starts_with(b"MeST") {
        return Some(&value[4..]);
    }
    if value.starts_with(b"GMT") {
        let rest = &value[3..];
        return Some(&rest[signed_offset(rest)..]);
    }
    if matches!(value[0], b'+' | b'-') {
        let length = signed_offset(value);
        return (length > 0).then(|| &value[length..]);
    }
    let upper = value
        .iter()
        .take(6)
        .take_while(|b| b.is_ascii_uppercase())
        .count();
    let length = match upper {
        3 => 3,
        4 if value[3] == b'T' || value.starts_with(b"WITA") => 4,
        5 if value[4] == b'T' => 5,
        _ => return None,
    };
    Some(&value[length..])
}

/// Go's `parseSignedOffset`: the length of `+h`/`-h` (digits, at most 23) at the start
/// of `value`, 0 when there is none.
fn signed_offset(value: &[u8]) -> usize {
    if !matches!(value.first(), Some(b'+' | b'-')) {
        return 0;
    }
    let digits = value[1..].iter().take_while(|b| b.is_ascii_digit()).count();
    match digits_value(&value[1..1 + digits]) {
        Some(hours) if hours <= 23 => 1 + digits,
        _ => 0,
    }
}

fn days_in(month: i64, year: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to `year-month-day` (proleptic Gregorian; H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12; // March is 0
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::parse_http_time;

    fn parsed(value: &str) -> Option<i64> {
        parse_http_time(value.as_bytes())
    }

    /// 1994-11-06 08:49:37 UTC, RFC 9110's example.
    const EXAMPLE: i64 = 784_111_777;

    #[test]
    fn the_three_formats_of_rfc_9110_parse() {
        assert_eq!(parsed("Sun, 06 Nov 1994 08:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parsed("Sunday, 06-Nov-94 08:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parsed("Sun Nov  6 08:49:37 1994"), Some(EXAMPLE));
        assert_eq!(parsed("  Sun, 06 Nov 1994 08:49:37 GMT\t"), Some(EXAMPLE));
    }

    #[test]
    fn go_is_lenient_where_it_is() {
        // The weekday is read, not checked; names in any case.
        assert_eq!(parsed("Fri, 06 Nov 1994 08:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parsed("sun, 06 NOV 1994 08:49:37 GMT"), Some(EXAMPLE));
        // The hour in one digit; runs of spaces; a fraction after the seconds.
        assert_eq!(parsed("Sun, 06 Nov 1994 8:49:37 GMT"), Some(EXAMPLE));
        assert_eq!(parsed("Sun,   06 Nov  1994 08:49:37   GMT"), Some(EXAMPLE));
        assert_eq!(parsed("Sun, 06 Nov 1994 08:49:37.5 GMT"), Some(EXAMPLE));
        // RFC 850: any zone abbreviation, which does not move the instant.
        assert_eq!(parsed("Sunday, 06-Nov-94 08:49:37 PST"), Some(EXAMPLE));
        assert_eq!(parsed("Sunday, 06-Nov-94 08:49:37 GMT+3"), Some(EXAMPLE));
        assert_eq!(parsed("Sunday, 06-Nov-94 08:49:37 UTC"), Some(EXAMPLE));
        // asctime's day in two digits, or one without its padding.
        assert_eq!(parsed("Sun Nov 6 08:49:37 1994"), Some(EXAMPLE));
        assert_eq!(
            parsed("Thu Nov 16 08:49:37 1994"),
            Some(EXAMPLE + 10 * 86_400)
        );
    }

    #[test]
    fn two_digit_years_turn_at_69() {
        assert_eq!(parsed("Thursday, 01-Jan-70 00:00:00 GMT"), Some(0));
        assert_eq!(parsed("Wednesday, 31-Dec-69 23:59:59 GMT"), Some(-1));
        assert_eq!(
            parsed("Saturday, 01-Jan-00 00:00:00 GMT"),
            Some(946_684_800)
        );
        assert_eq!(
            parsed("Monday, 01-Jan-68 00:00:00 GMT"),
            Some(3_092_601_600)
        );
    }

    #[test]
    fn what_go_refuses_is_none() {
        for bad in [
            "",
            "yesterday",
            "Sun, 06 Nov 1994 08:49:37 UTC", // RFC 1123 wants GMT as written
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT x",
            "Sun, 6 Nov 1994 08:49:37 GMT", // `02` wants two digits
            "Sun, 31 Nov 1994 08:49:37 GMT",
            "Sun, 29 Feb 1995 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:37 GMT",
            "Sun, 06 Nov 1994 08:49:60 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 gmt",
            "Sunday, 06-Nov-94 08:49:37 GMT+30",
            "Sun, 06 Nov 1994 08:49:37.1234567890 GMT",
            "Sun Nov  6 08:49:37 94",
            "1994-11-06T08:49:37Z",
        ] {
            assert_eq!(parsed(bad), None, "{bad:?}");
        }
        assert_eq!(parse_http_time(b"Sun, 06 Nov 1994 08:49:37 GMT\xff"), None);
        assert_eq!(parsed("Thu, 29 Feb 1996 00:00:00 GMT"), Some(825_552_000));
    }
}
