//! `/api/history`'s JSON: a target's transitions, each shaped as `/status` shows it, and
//! its per-minute aggregates.

use std::io::{self, Write};

use serde::Serialize;

use crate::sinks::status::{Time, TransitionJson};
use crate::state::{MinuteAggregate, Transition};

/// Writes `{"target":NAME,"transitions":[...],"aggregates":[...]}` to `out`: each
/// transition as `/status` shows it, each minute as
/// `{"at":{"rfc3339","unix"},"checks","failures","rtt_min_seconds","rtt_avg_seconds","rtt_max_seconds"}`
/// (`at` is when the minute began; the RTTs are `null` when no check succeeded in it).
/// Both oldest first.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use connhealth_watch::sinks::history::render;
/// use connhealth_watch::state::MinuteAggregate;
///
/// let mut minute = MinuteAggregate::new(UNIX_EPOCH + Duration::from_secs(60));
/// minute.add(false, Duration::from_secs(1));
/// let mut out = Vec::new();
/// render("web", &[], &[minute], &mut out)?;
/// let json: serde_json::Value = serde_json::from_slice(&out)?;
/// assert_eq!(json["target"], "web");
/// assert_eq!(json["aggregates"][0]["failures"], 1);
/// assert!(json["aggregates"][0]["rtt_avg_seconds"].is_null());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render<W: Write>(
    target: &str,
    transitions: &[Transition],
    minutes: &[MinuteAggregate],
    out: &mut W,
) -> io::Result<()> {
    let answer = Answer {
        target,
        transitions: transitions.iter().map(TransitionJson::of).collect(),
        aggregates: minutes.iter().map(AggregateJson::of).collect(),
    };
    serde_json::to_writer(&mut *out, &answer)?;
    out.write_all(b"\n")
}

#[derive(Serialize)]
struct Answer<'a> {
    target: &'a str,
    transitions: Vec<TransitionJson<'a>>,
    aggregates: Vec<AggregateJson>,
}

#[derive(Serialize)]
pub(crate) struct AggregateJson {
    at: Time,
    checks: u32,
    failures: u32,
    rtt_min_seconds: Option<f64>,
    rtt_avg_seconds: Option<f64>,
    rtt_max_seconds: Option<f64>,
}

impl AggregateJson {
    pub(crate) fn of(minute: &MinuteAggregate) -> AggregateJson {
        let ok = minute.successes() > 0;
        let seconds = |us: u32| ok.then(|| f64::from(us) / 1e6);
        AggregateJson {
            at: Time(minute.start()),
            checks: minute.checks,
            failures: minute.failures,
            rtt_min_seconds: seconds(minute.rtt_min_us),
            rtt_avg_seconds: minute.rtt_avg().map(|avg| avg.as_secs_f64()),
            rtt_max_seconds: seconds(minute.rtt_max_us),
        }
    }
}
