//! `/metrics`: the fleet's series and the daemon's own, rendered at scrape time.
//!
//! Nothing on the check path touches a metric: each target keeps its counters in its
//! [`TargetState`], and a scrape reads them. [`render`] builds one
//! [`MetricFamily`] at a time, encodes it in the classic text format (0.0.4, which
//! `promtool check metrics` lints cleanly) and drops it before building the next; a
//! family of many targets is built and encoded in slices of 1024 series. A scrape
//! of 100k targets (70 MB of text) holds about 1 MB of series at once.
//!
//! `connhealth_target_checks_total` is the exception: it has every result of every
//! target, ten series each, most of them 0, so it is written as text straight from the
//! counters, each target's labels escaped once for its ten lines, with no allocation per
//! series.
//!
//! [`render`] is a pure function of the fleet and the daemon's counters: tests call it
//! without a daemon. The `process_*` series come from [`render_process`].

use std::io::{self, Write};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus::core::Collector;
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, TextEncoder};

use connhealth::ProbeEngine;

use crate::checks::Outcome;
use crate::config::{CheckKind, TargetPlan};
use crate::state::{Fleet, Health, TargetState};

/// The `Content-Type` of `/metrics` (and `/probe`): the classic text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The labels every per-target series has, before the target's own.
pub const TARGET_LABELS: [&str; 3] = ["target", "address", "check"];

/// The daemon's own numbers that a scrape shows beside the fleet's.
#[derive(Debug, Clone, Default)]
pub struct DaemonCounters {
    /// `connhealth_checks_late_total`.
    pub late_checks: u64,
    /// `connhealth_config_last_reload_successful` and `..._success_timestamp_seconds`.
    pub reload: ReloadState,
    /// `connhealth_sink_events_dropped_total{sink}`: each sink's name and the events it
    /// lost because it fell behind ([`super::Sinks::dropped`]).
    pub sinks_dropped: Vec<(&'static str, u64)>,
    /// `connhealth_alerts_sent_total{receiver}` and `connhealth_alerts_failed_total`:
    /// each alert receiver's name, notifications it took, and POSTs that failed.
    pub alerts: Vec<AlertCounts>,
    /// `connhealth_probe_engine{engine}`: the engine of the half-open prober (half-open
    /// checks, hold's probes, `/probe`'s `half_open`), or None if it could not start.
    pub probe_engine: Option<ProbeEngine>,
}

/// The engines `connhealth_probe_engine` has a series for, in order: each is 1 when it
/// runs the half-open checks, else 0, so that a rule can ask for either
/// (`connhealth_probe_engine{engine="sockets"} == 1`).
const PROBE_ENGINES: [ProbeEngine; 2] = [ProbeEngine::Raw, ProbeEngine::Sockets];

/// One alert receiver's counters, for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// The `receiver` label.
    pub receiver: &'static str,
    /// Notifications the receiver took (a 2xx answer).
    pub sent: u64,
    /// POSTs that failed (each try counts).
    pub failed: u64,
}

/// One per-receiver alert family: its name, its help, and the count it reads.
type AlertFamily = (&'static str, &'static str, fn(&AlertCounts) -> u64);

/// The outcome of the last reload, for `connhealth_config_last_reload_*`.
#[derive(Debug, Clone, Copy)]
pub struct ReloadState {
    /// The last reload (or the first load) succeeded.
    pub successful: bool,
    /// When a config last loaded.
    pub last_success: SystemTime,
}

impl Default for ReloadState {
    /// A config that loaded just now.
    fn default() -> Self {
        ReloadState {
            successful: true,
            last_success: SystemTime::now(),
        }
    }
}

/// Writes every `connhealth_*` series of `fleet` and `daemon` to `out`, one family at a
/// time. A family with no series (no tls target, say) is left out, as the text format
/// wants.
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use connhealth_watch::config::{CheckPlan, TargetPlan};
/// use connhealth_watch::sinks::metrics::{render, DaemonCounters};
/// use connhealth_watch::state::{Fleet, Watched};
///
/// let labels = [("service".to_string(), "cache".to_string())].into();
/// let plan = TargetPlan::new("cache-a", "127.0.0.1:6379", labels, CheckPlan::default())?;
/// let fleet = Fleet {
///     targets: vec![Arc::new(Watched::new(plan, SystemTime::now()))],
///     modules: Default::default(),
///     unsupported_modules: Default::default(),
///     defaults_timeout: None,
///     blackbox: false,
///     probe: Default::default(),
/// };
/// let daemon = DaemonCounters::default(); // a config loaded just now, nothing late
/// let mut text = Vec::new();
/// render(&fleet, &daemon, &mut text)?;
/// let text = String::from_utf8(text)?;
/// assert!(text.contains("\nconnhealth_targets 1\n"));
/// // Unknown until its first checks: no `up` series yet, and every result at 0.
/// assert!(!text.contains("\nconnhealth_target_up{"));
/// assert!(text.contains(
///     "\nconnhealth_target_checks_total{target=\"cache-a\",address=\"127.0.0.1:6379\",\
///      check=\"half-open\",service=\"cache\",result=\"refused\"} 0\n"
/// ));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn render<W: Write>(fleet: &Fleet, daemon: &DaemonCounters, out: &mut W) -> io::Result<()> {
    let mut encoder = FamilyWriter { out };
    encoder.daemon(fleet, daemon)?;
    for family in TargetFamily::ALL {
        match family {
            TargetFamily::Checks => encoder.checks(fleet)?,
            _ => encoder.target_family(fleet, family)?,
        }
    }
    Ok(())
}

/// Writes the standard `process_*` series of this process (`process_cpu_seconds_total`,
/// `process_resident_memory_bytes`, `process_open_fds` and the collector's others). The
/// CPU time is getrusage's, to the microsecond; the others are the prometheus crate's
/// process collector's.
pub fn render_process<W: Write>(out: &mut W) -> io::Result<()> {
    static PROCESS: OnceLock<prometheus::process_collector::ProcessCollector> = OnceLock::new();
    let collector = PROCESS.get_or_init(prometheus::process_collector::ProcessCollector::for_self);
    for family in collector.collect() {
        if family.name() == CPU_SECONDS {
            // The collector divides clock ticks by ticks per second in integers: it
            // counts whole seconds, and rate() of an idle daemon reads 0 or 1.
            let cpu = metric(
                Vec::new(),
                MetricType::COUNTER,
                crate::sys::process_cpu_seconds(),
            );
            encode(
                &self::family(CPU_SECONDS, family.help(), MetricType::COUNTER, vec![cpu]),
                out,
            )?;
        } else if !family.get_metric().is_empty() {
            encode(&family, out)?;
        }
    }
    Ok(())
}

/// The standard name of the process's CPU time.
const CPU_SECONDS: &str = "process_cpu_seconds_total";

/// A whole scrape, as `/metrics` serves it, in one string: for tests and small fleets.
pub fn render_to_string(fleet: &Fleet, daemon: &DaemonCounters) -> String {
    let mut out = Vec::new();
    render(fleet, daemon, &mut out)
        .and_then(|()| render_process(&mut out))
        .expect("writing to a Vec does not fail");
    String::from_utf8(out).expect("the text encoder writes UTF-8")
}

/// The per-target families, in the order a scrape lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetFamily {
    Up,
    StateChanges,
    LastChange,
    Checks,
    LastCheckDuration,
    CertExpiry,
}

impl TargetFamily {
    const ALL: [TargetFamily; 6] = [
        TargetFamily::Up,
        TargetFamily::StateChanges,
        TargetFamily::LastChange,
        TargetFamily::Checks,
        TargetFamily::LastCheckDuration,
        TargetFamily::CertExpiry,
    ];

    fn name(self) -> &'static str {
        match self {
            TargetFamily::Up => "connhealth_target_up",
            TargetFamily::StateChanges => "connhealth_target_state_changes_total",
            TargetFamily::LastChange => "connhealth_target_last_change_timestamp_seconds",
            TargetFamily::Checks => "connhealth_target_checks_total",
            TargetFamily::LastCheckDuration => "connhealth_target_last_check_duration_seconds",
            TargetFamily::CertExpiry => "connhealth_target_ssl_earliest_cert_expiry_seconds",
        }
    }

    fn help(self) -> &'static str {
        match self {
            TargetFamily::Up => {
                "1 if the target is up (rise successes in a row), 0 if down (fall failures in a row); absent while unknown."
            }
            TargetFamily::StateChanges => {
                "Transitions of the target between up and down (from unknown to either counts too)."
            }
            TargetFamily::LastChange => {
                "Unix time of the target's last transition; absent before the first."
            }
            TargetFamily::Checks => {
                "Checks of the target by result: ok, refused, timeout, unreachable, resolve, exhausted (the checker's own limits), closed, mismatch, tls or error."
            }
            TargetFamily::LastCheckDuration => {
                "The last check's own time in seconds: to the SYN-ACK, the handshake or the match."
            }
            TargetFamily::CertExpiry => {
                "tls targets: Unix time of the earliest notAfter in the chain the last handshake saw."
            }
        }
    }

    fn kind(self) -> MetricType {
        match self {
            TargetFamily::StateChanges | TargetFamily::Checks => MetricType::COUNTER,
            _ => MetricType::GAUGE,
        }
    }

    /// This family's value for one target, if it has a series now.
    /// `connhealth_target_checks_total` has none here: [`FamilyWriter::checks`] writes
    /// it.
    fn value(self, plan: &TargetPlan, status: &TargetState) -> Option<f64> {
        match self {
            TargetFamily::Up => match status.health {
                Health::Up => Some(1.0),
                Health::Down => Some(0.0),
                Health::Unknown => None,
            },
            TargetFamily::StateChanges => Some(status.state_changes as f64),
            TargetFamily::LastChange => status.last_change.map(unix_seconds),
            TargetFamily::Checks => None,
            TargetFamily::LastCheckDuration => status
                .last_check
                .as_ref()
                .map(|last| last.duration.as_secs_f64()),
            TargetFamily::CertExpiry => status
                .cert_expiry
                .filter(|_| plan.check.kind() == CheckKind::Tls)
                .map(unix_seconds),
        }
    }
}

/// Builds families and encodes each as soon as it is complete.
struct FamilyWriter<'a, W: Write> {
    out: &'a mut W,
}

impl<W: Write> FamilyWriter<'_, W> {
    fn daemon(&mut self, fleet: &Fleet, daemon: &DaemonCounters) -> io::Result<()> {
        let version = label("version", env!("CARGO_PKG_VERSION"));
        let families = [
            (
                "connhealth_build_info",
                "Always 1; the version label is the connhealth-watch version.",
                MetricType::GAUGE,
                vec![version],
                1.0,
            ),
            (
                "connhealth_targets",
                "Targets this instance watches (its shard's, with --shard).",
                MetricType::GAUGE,
                Vec::new(),
                fleet.targets.len() as f64,
            ),
            (
                "connhealth_checks_late_total",
                "Checks started more than max(10ms, 10% of their interval) after they were due: the checker is overloaded.",
                MetricType::COUNTER,
                Vec::new(),
                daemon.late_checks as f64,
            ),
            (
                "connhealth_config_last_reload_successful",
                "1 if the last reload of the config and file_sd (or the first load) succeeded, 0 if it failed and the previous config is still in use.",
                MetricType::GAUGE,
                Vec::new(),
                if daemon.reload.successful { 1.0 } else { 0.0 },
            ),
            (
                "connhealth_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful load of the config.",
                MetricType::GAUGE,
                Vec::new(),
                unix_seconds(daemon.reload.last_success),
            ),
            // blackbox_exporter's names for the same two, which its users' alert rules
            // check (a drop-in answers them too).
            (
                "blackbox_exporter_config_last_reload_successful",
                "Blackbox exporter config loaded successfully.",
                MetricType::GAUGE,
                Vec::new(),
                if daemon.reload.successful { 1.0 } else { 0.0 },
            ),
            (
                "blackbox_exporter_config_last_reload_success_timestamp_seconds",
                "Timestamp of the last successful configuration reload.",
                MetricType::GAUGE,
                Vec::new(),
                unix_seconds(daemon.reload.last_success),
            ),
        ];
        for (name, help, kind, labels, value) in families {
            let family = family(name, help, kind, vec![metric(labels, kind, value)]);
            encode(&family, self.out)?;
        }
        let engines = PROBE_ENGINES
            .iter()
            .map(|&engine| {
                let runs = daemon.probe_engine == Some(engine);
                metric(
                    vec![label("engine", engine.as_str())],
                    MetricType::GAUGE,
                    if runs { 1.0 } else { 0.0 },
                )
            })
            .collect();
        let engine_family = family(
            "connhealth_probe_engine",
            "1 for the engine that sends the half-open checks' SYNs (hold's probes and /probe's half_open too), 0 for the other: raw (one raw socket for every probe, with CAP_NET_RAW) or sockets (a socket per probe); both 0 if the prober could not start.",
            MetricType::GAUGE,
            engines,
        );
        encode(&engine_family, self.out)?;
        if !daemon.sinks_dropped.is_empty() {
            let kind = MetricType::COUNTER;
            let series = daemon
                .sinks_dropped
                .iter()
                .map(|&(sink, dropped)| metric(vec![label("sink", sink)], kind, dropped as f64))
                .collect();
            let family = family(
                "connhealth_sink_events_dropped_total",
                "Events a sink (the log, say) lost because it fell behind: a slow sink loses its own events and never delays a check.",
                kind,
                series,
            );
            encode(&family, self.out)?;
        }
        if !daemon.alerts.is_empty() {
            let kind = MetricType::COUNTER;
            let counters: [AlertFamily; 2] = [
                (
                    "connhealth_alerts_sent_total",
                    "Notifications an alert receiver took (answered 2xx): one per transition sent; Alertmanager's periodic refreshes of firing alerts are not counted.",
                    |counts| counts.sent,
                ),
                (
                    "connhealth_alerts_failed_total",
                    "POSTs to an alert receiver that failed: no connection, no answer within 10s, or an answer other than 2xx. Each try counts (a notification is tried again with backoff until it is taken), and so does a failed refresh of Alertmanager's firing alerts.",
                    |counts| counts.failed,
                ),
            ];
            for (name, help, count) in counters {
                let series = daemon
                    .alerts
                    .iter()
                    .map(|counts| {
                        metric(
                            vec![label("receiver", counts.receiver)],
                            kind,
                            count(counts) as f64,
                        )
                    })
                    .collect();
                encode(&family(name, help, kind, series), self.out)?;
            }
        }
        Ok(())
    }

    /// `connhealth_target_checks_total`: every result of every target, 0 where none
    /// happened. A series that first appears at 1 shows no increase() in Prometheus, so
    /// the first failure of a target would go unseen if its series waited for it.
    ///
    /// Ten series per target make this the largest family by far (half a million lines
    /// at 50k targets), so it is written as text from the counters: a target's labels
    /// are escaped once into `labels`, its ten lines are written into `lines`, and both
    /// buffers are reused from target to target.
    fn checks(&mut self, fleet: &Fleet) -> io::Result<()> {
        if fleet.targets.is_empty() {
            return Ok(());
        }
        let which = TargetFamily::Checks;
        write_help_and_type(which, self.out)?;
        let mut labels = Vec::with_capacity(256);
        let mut lines = Vec::with_capacity(4096);
        for target in &fleet.targets {
            // A copy of ten counters: the lock is not held while writing.
            let counts = target.state().checks;
            labels.clear();
            labels.extend_from_slice(which.name().as_bytes());
            // Never empty: `target`, `address` and `check` come first.
            let mut separator = b'{';
            for (name, value) in target_label_pairs(&target.plan) {
                labels.push(separator);
                separator = b',';
                labels.extend_from_slice(name.as_bytes());
                labels.extend_from_slice(b"=\"");
                escape_label_value(value, &mut labels);
                labels.push(b'"');
            }
            labels.extend_from_slice(b",result=\"");
            lines.clear();
            for outcome in Outcome::ALL {
                lines.extend_from_slice(&labels);
                writeln!(lines, "{}\"}} {}", outcome.label(), counts[outcome.index()])?;
            }
            self.out.write_all(&lines)?;
        }
        Ok(())
    }

    fn target_family(&mut self, fleet: &Fleet, which: TargetFamily) -> io::Result<()> {
        let kind = which.kind();
        let mut slice = Slice {
            which,
            metrics: Vec::with_capacity(SLICE),
            encoded_before: false,
            continuation: Vec::new(),
        };
        for target in &fleet.targets {
            // The lock is held for a few loads: the scheduler never waits on a scrape.
            let value = which.value(&target.plan, &target.state());
            if let Some(value) = value {
                slice
                    .metrics
                    .push(metric(target_labels(&target.plan), kind, value));
            }
            if slice.metrics.len() >= SLICE {
                slice.encode(self.out)?;
            }
        }
        slice.encode(self.out)
    }
}

/// Series encoded at a time. A series' proto (its label pairs, each two `String`s) is
/// several times the size of its line of text: a family of 100k series built whole
/// would hold about as much as the whole scrape's text (66 MB measured), so a family is
/// built and encoded a slice at a time.
const SLICE: usize = 1024;

/// The series of one family not encoded yet.
struct Slice {
    which: TargetFamily,
    metrics: Vec<Metric>,
    /// The family's `# HELP` and `# TYPE` lines are written.
    encoded_before: bool,
    /// Where a continuation is encoded before its `# TYPE` line is cut off.
    continuation: Vec<u8>,
}

impl Slice {
    /// Encodes and drops the series gathered so far. The first slice of a family comes
    /// with its `# HELP` and `# TYPE` lines; the text encoder writes a `# TYPE` line
    /// for every family it is given, so a later slice is encoded without help and its
    /// first line, that `# TYPE`, is left out: the format allows one per family.
    fn encode<W: Write>(&mut self, out: &mut W) -> io::Result<()> {
        if self.metrics.is_empty() {
            return Ok(());
        }
        let which = self.which;
        let help = if self.encoded_before {
            ""
        } else {
            which.help()
        };
        let metrics = std::mem::take(&mut self.metrics);
        let mut family = family(which.name(), help, which.kind(), metrics);
        if self.encoded_before {
            self.continuation.clear();
            encode(&family, &mut self.continuation)?;
            let samples = self
                .continuation
                .iter()
                .position(|&b| b == b'\n')
                .map_or(0, |type_line| type_line + 1);
            debug_assert!(self.continuation.starts_with(b"# TYPE "));
            out.write_all(&self.continuation[samples..])?;
        } else {
            encode(&family, out)?;
            self.encoded_before = true;
        }
        // Keep the vector's room for the next slice.
        self.metrics = family.take_metric();
        self.metrics.clear();
        Ok(())
    }
}

/// `target`, `address`, `check` and the target's own labels.
fn target_labels(plan: &TargetPlan) -> Vec<LabelPair> {
    let mut labels = Vec::with_capacity(TARGET_LABELS.len() + plan.labels.len());
    labels.extend(target_label_pairs(plan).map(|(name, value)| label(name, value)));
    labels
}

/// The names and values of [`target_labels`], in order, unescaped.
fn target_label_pairs(plan: &TargetPlan) -> impl Iterator<Item = (&str, &str)> {
    let daemon = [
        ("target", plan.name.as_str()),
        ("address", plan.address.as_str()),
        ("check", plan.check.kind().name()),
    ];
    // The config rejects the names left out; a name that slipped through would make the
    // whole scrape unparseable (a duplicate or malformed label).
    let own = plan
        .labels
        .iter()
        .filter(|(name, _)| is_target_label_name(name))
        .map(|(name, value)| (name.as_str(), value.as_str()));
    daemon.into_iter().chain(own)
}

/// Appends `value` escaped as the text format wants a label value, as the prometheus
/// crate's encoder escapes it: `\`, `"` and a newline.
fn escape_label_value(value: &str, out: &mut Vec<u8>) {
    for &byte in value.as_bytes() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            _ => out.push(byte),
        }
    }
}

/// The `# HELP` and `# TYPE` lines of a family written as text.
fn write_help_and_type<W: Write>(which: TargetFamily, out: &mut W) -> io::Result<()> {
    // The help texts are constants with nothing to escape.
    debug_assert!(!which.help().contains(['\\', '\n']));
    let kind = if which.kind() == MetricType::COUNTER {
        "counter"
    } else {
        "gauge"
    };
    writeln!(out, "# HELP {} {}", which.name(), which.help())?;
    writeln!(out, "# TYPE {} {kind}", which.name())
}

/// True for a label name a target may add: the config's rule
/// ([`config::label_problem`](crate::config::label_problem)), Prometheus' syntax, not
/// reserved (`__`), and not one the daemon sets itself.
pub fn is_target_label_name(name: &str) -> bool {
    crate::config::label_problem(name).is_none()
}

pub(crate) fn label(name: &str, value: &str) -> LabelPair {
    let mut pair = LabelPair::default();
    pair.set_name(name.to_owned());
    pair.set_value(value.to_owned());
    pair
}

pub(crate) fn metric(labels: Vec<LabelPair>, kind: MetricType, value: f64) -> Metric {
    let mut metric = Metric::default();
    metric.set_label(labels);
    if kind == MetricType::COUNTER {
        let mut counter = Counter::default();
        counter.set_value(value);
        metric.set_counter(counter);
    } else {
        let mut gauge = Gauge::default();
        gauge.set_value(value);
        metric.set_gauge(gauge);
    }
    metric
}

pub(crate) fn family(
    name: &str,
    help: &str,
    kind: MetricType,
    metrics: Vec<Metric>,
) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// Encodes one family. `pub(crate)`: `/probe` encodes its families the same way.
pub(crate) fn encode<W: Write>(family: &MetricFamily, out: &mut W) -> io::Result<()> {
    TextEncoder::new()
        .encode(std::slice::from_ref(family), out)
        .map_err(|err| match err {
            prometheus::Error::Io(err) => err,
            other => io::Error::other(other.to_string()),
        })
}

/// `at` as Unix seconds (0 for a time before 1970, which no clock here reports).
pub(crate) fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}
