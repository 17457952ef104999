//! `/status`: JSON, every target with its state, since when, its last check, its
//! counters and its last transitions, in config order ([`render`]); or those a [`Filter`]
//! takes (`?state=`, `?target=`). Rendered at request time from each target's
//! [`TargetState`], which the sinks' seam keeps ([`super::Sinks::record`]).

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};
use std::time::SystemTime;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::metrics::unix_seconds;
use crate::checks::Outcome;
use crate::state::{Fleet, Health, LastCheck, TargetState, Transition, Watched};

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
/// use connhealth_watch::sinks::status::Filter;
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
        self.names.as_ref().is_none_or(|names| names.contains(name))
    }

    /// True when a target in `health` may be listed: no state filter, or `health` is in
    /// it.
    pub fn takes_state(&self, health: Health) -> bool {
        self.states
            .as_ref()
            .is_none_or(|states| states.contains(&health))
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
            let status = target.state();
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
    fn of(target: &'a Watched, status: &'a TargetState) -> TargetJson<'a> {
        TargetJson {
            name: &target.plan.name,
            address: &target.plan.address,
            check: target.plan.check.kind().name(),
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

/// A target's last check, as `/status` shows it (the status page's rows too).
#[derive(Serialize)]
pub(crate) struct LastCheckJson<'a> {
    at: Time,
    /// The `result` label: `ok`, `refused`, ...
    result: &'static str,
    duration_seconds: f64,
    detail: Option<&'a str>,
}

impl<'a> LastCheckJson<'a> {
    pub(crate) fn of(last: &'a LastCheck) -> LastCheckJson<'a> {
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

/// A transition, as `/status` shows it (`/api/history`, the status page's rows and live
/// events too).
#[derive(Serialize)]
pub(crate) struct TransitionJson<'a> {
    from: &'static str,
    to: &'static str,
    at: Time,
    why: &'a str,
    /// What the deciding check found, for a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    check_seconds: f64,
}

impl<'a> TransitionJson<'a> {
    pub(crate) fn of(transition: &'a Transition) -> TransitionJson<'a> {
        TransitionJson {
            from: transition.from.name(),
            to: transition.to.name(),
            at: Time(transition.at),
            why: &transition.why,
            detail: transition.detail.as_deref(),
            check_seconds: transition.check_time.as_secs_f64(),
        }
    }
}

/// A time, as `{"rfc3339": "2026-12-01T20:41:39.120Z", "unix": 1796157699.12}`.
pub(crate) struct Time(pub(crate) SystemTime);

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
