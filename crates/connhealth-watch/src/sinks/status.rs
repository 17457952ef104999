//! `/status` and the log: what a person reads.
//!
//! * [`render`]: `/status`, JSON, every target with its state, since when, its last check,
//!   its counters and its last transitions, in config order; or those a [`Filter`]
//!   takes (`?state=`, `?target=`);
//! * [`init_logging`]: the log on stderr, text or JSON, through a non-blocking writer so
//!   that a slow stderr never holds up a check;
//! * [`log_transition`]: the one line each state change writes.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use crate::checks::Outcome;
use crate::config::TargetPlan;
use crate::daemon::{Fleet, LogFormat};
use crate::human::Rounded;
use crate::metrics::unix_seconds;
use crate::state::{Health, LastCheck, Target, TargetStatus, Transition};

/// The `Content-Type` of `/status`.
pub const CONTENT_TYPE: &str = "application/json";

/// Which targets `/status` lists: those that pass every filter given; all of them when
/// none is (the default).
///
/// A filter is applied while rendering, target by target, so that a query for a few
/// targets of a fleet of 50k neither copies the fleet nor holds more than one target's
/// lock at a time.
///
/// ```
/// use connhealth_watch::state::Health;
/// use connhealth_watch::status::Filter;
///
/// // `?state=down,unknown&target=cache-a&target=cache-b`
/// let filter = Filter {
///     states: Some(vec![Health::Down, Health::Unknown]),
///     names: Some(["cache-a", "cache-b"].map(String::from).into()),
/// };
/// assert!(filter.takes_name("cache-a") && !filter.takes_name("web"));
/// assert!(filter.takes_state(Health::Down) && !filter.takes_state(Health::Up));
/// assert!(Filter::default().takes_state(Health::Up));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// `?state=`: only targets in one of these states; every state when `None`.
    pub states: Option<Vec<Health>>,
    /// `?target=`: only the targets of these exact names; every target when `None`.
    pub names: Option<HashSet<String>>,
}

impl Filter {
    /// True when a target named `name` may be listed: no name filter, or `name` is in it.
    pub fn takes_name(&self, name: &str) -> bool {
        self.names
            .as_ref()
            .map_or(true, |names| names.contains(name))
    }

    /// True when a target in `health` may be listed: no state filter, or `health` is in
    /// it.
    pub fn takes_state(&self, health: Health) -> bool {
        self.states
            .as_ref()
            .map_or(true, |states| states.contains(&health))
    }

    /// The names of the name filter that no target of `fleet` has, sorted: a query
    /// for a target that does not exist is answered 404 rather than with an empty list,
    /// which would read as "exists, but not in that state". One pass over the fleet.
    pub fn missing_names<'a>(&'a self, fleet: &Fleet) -> Vec<&'a str> {
        let Some(names) = &self.names else {
            return Vec::new();
        };
        let mut missing: HashSet<&str> = names.iter().map(String::as_str).collect();
        for target in &fleet.targets {
            if missing.is_empty() {
                break;
            }
            missing.remove(target.plan.name.as_str());
        }
        let mut missing: Vec<&str> = missing.into_iter().collect();
        missing.sort_unstable();
        missing
    }
}

/// Writes `/status` for `fleet` to `out`: `{"targets":[...]}`, one target per line, in
/// config order, the targets that pass `filter` (see [`Filter::missing_names`] to answer
/// 404 for a name that no target has).
///
/// Each target is serialized while its lock is held (a few microseconds) and written
/// after it is released, so a slow reader never holds up the target's checks. The name
/// filter is applied before the lock is taken, the state filter under it: the state
/// tested is the state shown.
pub fn render<W: Write>(fleet: &Fleet, filter: &Filter, out: &mut W) -> io::Result<()> {
    let mut line = Vec::with_capacity(1024);
    out.write_all(b"{\"targets\":[")?;
    let mut first = true;
    for target in fleet
        .targets
        .iter()
        .filter(|t| filter.takes_name(&t.plan.name))
    {
        {
            let status = target.status();
            if !filter.takes_state(status.health) {
                continue;
            }
            line.clear();
            line.extend_from_slice(if first { b"\n" } else { b",\n" });
            serde_json::to_writer(&mut line, &TargetJson::of(target, &status))?;
        }
        first = false;
        out.write_all(&line)?;
    }
    out.write_all(b"\n]}\n")
}

/// One target in `/status`.
#[derive(Serialize)]
struct TargetJson<'a> {
    name: &'a str,
    address: &'a str,
    check: &'static str,
    labels: &'a BTreeMap<String, String>,
    /// `unknown`, `up` or `down`.
    state: &'static str,
    since: Time,
    last_check: Option<LastCheckJson<'a>>,
    counters: CountersJson<'a>,
    /// tls: the earliest certificate expiry the last handshake saw.
    #[serde(skip_serializing_if = "Option::is_none")]
    cert_expiry: Option<Time>,
    /// Oldest first.
    transitions: Vec<TransitionJson<'a>>,
}

impl<'a> TargetJson<'a> {
    fn of(target: &'a Target, status: &'a TargetStatus) -> TargetJson<'a> {
        TargetJson {
            name: &target.plan.name,
            address: &target.plan.address,
            check: target.plan.check.kind.name(),
            labels: &target.plan.labels,
            state: status.health.name(),
            since: Time(status.since),
            last_check: status.last_check.as_ref().map(LastCheckJson::of),
            counters: CountersJson {
                checks: Checks(&status.checks),
                state_changes: status.state_changes,
                successes_in_a_row: status.successes,
                failures_in_a_row: status.failures,
            },
            cert_expiry: status.cert_expiry.map(Time),
            transitions: status.transitions.iter().map(TransitionJson::of).collect(),
        }
    }
}

#[derive(Serialize)]
struct LastCheckJson<'a> {
    at: Time,
    /// The `result` label: `ok`, `refused`, ...
    result: &'static str,
    duration_seconds: f64,
    detail: Option<&'a str>,
}

impl<'a> LastCheckJson<'a> {
    fn of(last: &'a LastCheck) -> LastCheckJson<'a> {
        LastCheckJson {
            at: Time(last.at),
            result: last.outcome.label(),
            duration_seconds: last.duration.as_secs_f64(),
            detail: last.detail.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct CountersJson<'a> {
    /// By result, every result listed.
    checks: Checks<'a>,
    state_changes: u64,
    successes_in_a_row: u32,
    failures_in_a_row: u32,
}

/// Checks by result, in [`Outcome::ALL`]'s order.
struct Checks<'a>(&'a [u64; Outcome::ALL.len()]);

impl Serialize for Checks<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Outcome::ALL.len()))?;
        for outcome in Outcome::ALL {
            map.serialize_entry(outcome.label(), &self.0[outcome.index()])?;
        }
        map.end()
    }
}

#[derive(Serialize)]
struct TransitionJson<'a> {
    from: &'static str,
    to: &'static str,
    at: Time,
    why: &'a str,
    check_seconds: f64,
}

impl<'a> TransitionJson<'a> {
    fn of(transition: &'a Transition) -> TransitionJson<'a> {
        TransitionJson {
            from: transition.from.name(),
            to: transition.to.name(),
            at: Time(transition.at),
            why: &transition.why,
            check_seconds: transition.check_time.as_secs_f64(),
        }
    }
}

/// A time, as `{"rfc3339": "2026-12-01T20:41:39.120Z", "unix": 1796157699.12}`.
struct Time(SystemTime);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(
            "rfc3339",
            &humantime::format_rfc3339_millis(self.0).to_string(),
        )?;
        map.serialize_entry("unix", &unix_seconds(self.0))?;
        map.end()
    }
}

/// Set once [`init_logging`] installs the JSON format: [`log_transition`] then writes
/// its fields as keys rather than one sentence.
static JSON_LOG: AtomicBool = AtomicBool::new(false);

/// Sets up logging to stderr, in `format`, at the level `RUST_LOG` says (default
/// `info`; an invalid `RUST_LOG` is reported and `info` used).
///
/// Lines go through [`tracing_appender::non_blocking()`]: a writer thread drains them, and
/// when stderr is so slow that 128k lines queue up, lines are dropped rather than any
/// check waiting. Keep the guard alive while the daemon runs: dropping it flushes what
/// is queued. Returns `None`, and changes nothing, when a global subscriber is already
/// installed (in tests, say).
pub fn init_logging(format: LogFormat) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    use tracing_subscriber::EnvFilter;

    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.trim().is_empty() => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(err) => (EnvFilter::new("info"), Some(format!("{spec:?}: {err}"))),
        },
        _ => (EnvFilter::new("info"), None),
    };
    let (writer, guard) = tracing_appender::non_blocking(io::stderr());
    let installed = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_writer(writer)
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(io::stderr().is_terminal())
            .with_timer(Rfc3339Millis)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_writer(writer)
            .with_env_filter(filter)
            .event_format(LabelsAsObject(
                tracing_subscriber::fmt::format()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .with_target(false)
                    .with_timer(Rfc3339Millis),
            ))
            .try_init(),
    };
    if installed.is_err() {
        return None;
    }
    JSON_LOG.store(format == LogFormat::Json, Ordering::Relaxed);
    if let Some(why) = bad_filter {
        tracing::warn!("RUST_LOG ignored, logging at info: {why}");
    }
    Some(guard)
}

/// The log's timestamps: UTC, RFC 3339, to the millisecond, in text and JSON alike. To
/// the second, a flap (down and up again within a second) and the order of two targets'
/// changes are lost, and the lines no longer line up with a packet capture.
struct Rfc3339Millis;

impl tracing_subscriber::fmt::time::FormatTime for Rfc3339Millis {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        write!(w, "{}", humantime::format_rfc3339_millis(SystemTime::now()))
    }
}

/// The JSON log's format, but with a `labels` field (a JSON object, recorded as its text,
/// since a tracing field is a string or a number) written as the object itself:
/// `"labels":{"service":"cache"}`, so that a log search filters on `labels.service` as a
/// query on the metrics does. Only transition lines carry `labels`, and they are rare,
/// so the second parse costs nothing that matters.
struct LabelsAsObject<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for LabelsAsObject<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if event.metadata().fields().field("labels").is_none() {
            return self.0.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        let inner = tracing_subscriber::fmt::format::Writer::new(&mut line);
        self.0.format_event(ctx, inner, event)?;
        let Ok(mut fields) = serde_json::from_str::<serde_json::Value>(&line) else {
            return writer.write_str(&line); // never expected: the line as it was
        };
        if let Some(labels) = fields.get_mut("labels") {
            if let Some(object) = labels.as_str().and_then(|t| serde_json::from_str(t).ok()) {
                *labels = object;
            }
        }
        writeln!(writer, "{fields}")
    }
}

/// Logs at WARN when `$down`, else at INFO: a target going down is what an operator is
/// paged for; one coming up is news. (A tracing level is fixed at each call site.)
macro_rules! warn_if {
    ($down:expr, $($event:tt)+) => {
        if $down {
            tracing::warn!($($event)+)
        } else {
            tracing::info!($($event)+)
        }
    };
}

/// Logs one state change of `target`, as one line on stderr: at WARN when it goes down,
/// at INFO otherwise.
///
/// Text: `2026-12-01T20:41:39.120Z  WARN target cache-a (127.0.0.1:6379) up -> down: 3
/// failures: refused (check 0.4ms)`. JSON: the same sentence as `message`, and the
/// fields `target`, `address`, `check` (the kind), `labels` (the target's own, as an
/// object), `from`, `to`, `why` and `check_ms` as keys.
pub fn log_transition(target: &TargetPlan, transition: &Transition) {
    let (from, to) = (transition.from.name(), transition.to.name());
    let down = transition.to == Health::Down;
    let check = Rounded(transition.check_time);
    if JSON_LOG.load(Ordering::Relaxed) {
        // Rounded to the microsecond: more digits are noise.
        let check_ms = (transition.check_time.as_secs_f64() * 1e6).round() / 1e3;
        // A map of strings always serializes.
        let labels = serde_json::to_string(&target.labels).unwrap_or_default();
        warn_if!(
            down,
            target = %target.name,
            address = %target.address,
            check = target.check.kind.name(),
            labels,
            from,
            to,
            why = %transition.why,
            check_ms,
            "target {} ({}) {from} -> {to}: {} (check {check})",
            target.name,
            target.address,
            transition.why,
        );
    } else {
        warn_if!(
            down,
            "target {} ({}) {from} -> {to}: {} (check {check})",
            target.name,
            target.address,
            transition.why,
        );
    }
}
