//! The log: every line on stderr, text or JSON ([`init_logging`]), and the one line each
//! state change writes ([`log_transition`]), delivered by the [`Log`] sink.

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use super::{Event, Sink};
use crate::config::{LogFormat, TargetPlan};
use crate::human::Rounded;
use crate::state::{Health, Transition};

/// The sink that writes a line per transition.
#[derive(Debug, Default)]
pub struct Log;

impl Sink for Log {
    fn name(&self) -> &'static str {
        "log"
    }

    fn deliver(&mut self, event: Event) {
        if let Event::Changed { target, transition } = event {
            log_transition(&target.plan, &transition);
        }
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
/// failures: refused (check 0.4ms)`, and what the deciding check found when it failed
/// (`target api (https://api/healthz) up -> down: 3 failures: mismatch (check 12ms):
/// status 500 Internal Server Error (expected 2xx)`). JSON: the same sentence as
/// `message`, and the fields `target`, `address`, `check` (the kind), `labels` (the
/// target's own, as an object), `from`, `to`, `why`, `detail` (for a failure) and
/// `check_ms` as keys.
pub fn log_transition(target: &TargetPlan, transition: &Transition) {
    let (from, to) = (transition.from.name(), transition.to.name());
    let down = transition.to == Health::Down;
    let check = Rounded(transition.check_time);
    let detail = transition.detail.as_deref().unwrap_or_default();
    let colon = if detail.is_empty() { "" } else { ": " };
    if JSON_LOG.load(Ordering::Relaxed) {
        // Rounded to the microsecond: more digits are noise.
        let check_ms = (transition.check_time.as_secs_f64() * 1e6).round() / 1e3;
        // A map of strings always serializes.
        let labels = serde_json::to_string(&target.labels).unwrap_or_default();
        warn_if!(
            down,
            target = %target.name,
            address = %target.address,
            check = target.check.kind().name(),
            labels,
            from,
            to,
            why = %transition.why,
            detail,
            check_ms,
            "target {} ({}) {from} -> {to}: {} (check {check}){colon}{detail}",
            target.name,
            target.address,
            transition.why,
        );
    } else {
        warn_if!(
            down,
            "target {} ({}) {from} -> {to}: {} (check {check}){colon}{detail}",
            target.name,
            target.address,
            transition.why,
        );
    }
}
