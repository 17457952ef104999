//! `GET /api/targets`: one page of the status page's rows, the number that matched, and
//! the counts by state.
//!
//! | parameter | meaning |
//! |---|---|
//! | `state` | `up`, `down` or `unknown`, several separated by commas or repeated |
//! | `label` | `NAME=VALUE`: targets with that label; repeated, targets with every one |
//! | `q` | targets whose name or address holds this text, in any case |
//! | `sort` | `state` (the default: down, then unknown, then up, each in config order), `name` or `config` |
//! | `offset` | rows to skip (default 0) |
//! | `limit` | rows to return (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]) |
//!
//! The answer:
//!
//! ```json
//! {"now": {"rfc3339": "...", "unix": 1796157699.1}, "total": 10000, "matched": 3,
//!  "counts": {"up": 9990, "down": 3, "unknown": 7}, "offset": 0, "limit": 50,
//!  "targets": [{"name": "db-1", "address": "10.0.0.7:5432", "check": "half-open",
//!    "labels": {"env": "prod"}, "state": "down", "since": {...},
//!    "last_check": {"at": {...}, "result": "refused", "duration_seconds": 0.0001,
//!                   "detail": "..."},
//!    "rtt_seconds": null,
//!    "uptime": {"1h": 0.98, "24h": 0.999, "7d": null},
//!    "last_hour": [{"minute": {...}, "checks": 30, "failures": 0,
//!                   "rtt_avg_seconds": 0.0003, "rtt_max_seconds": 0.0009}],
//!    "transitions": [{"from": "up", "to": "down", "at": {...}, "why": "3 failures: refused",
//!                     "check_seconds": 0.0001}],
//!    "muted": {"kind": "silenced", "until": {...}, "reason": "..."}}]}
//! ```
//!
//! `counts` counts the targets that pass `label` and `q`, whatever their state: they are
//! the numbers on the page's state filters. `transitions` are the latest
//! [`TRANSITIONS_SHOWN`], newest first, each as `/status` shows it.
//!
//! One pass over the fleet takes each target's lock once, briefly, to read its state;
//! then only the rows of the page are rendered, each from its own lock. 10k targets are
//! a fraction of a millisecond of locks, and the answer is one page whatever the fleet.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extras::{self, Extras};
use crate::http::{bad_request, Params};
use crate::reload::Shared;
use crate::sinks::alerts::Muted;
use crate::sinks::history::json::AggregateJson;
use crate::sinks::status::{LastCheckJson, Time, TransitionJson};
use crate::state::{Fleet, Health, Watched};

/// Rows per page when `limit` is not given.
pub(crate) const DEFAULT_LIMIT: usize = 50;

/// The most rows one request may ask for.
pub(crate) const MAX_LIMIT: usize = 500;

/// The transitions shown per row, the latest.
pub(crate) const TRANSITIONS_SHOWN: usize = 5;

/// The parameters `/api/targets` takes.
const PARAMS: [&str; 6] = ["state", "label", "q", "sort", "offset", "limit"];

/// The parameters that may be given more than once.
const REPEATABLE: [&str; 2] = ["state", "label"];

/// What a request asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RowQuery {
    /// Only these states; all when `None`.
    pub(crate) states: Option<Vec<Health>>,
    /// Only targets with every one of these labels.
    pub(crate) labels: Vec<(String, String)>,
    /// Only targets whose name or address holds this, in any case.
    pub(crate) text: Option<String>,
    /// The order of the rows.
    pub(crate) sort: Sort,
    /// Rows skipped.
    pub(crate) offset: usize,
    /// Rows returned at most.
    pub(crate) limit: usize,
}

/// The order of the rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Sort {
    /// Down first, then unknown, then up; config order within each.
    #[default]
    State,
    /// By name.
    Name,
    /// Config order.
    Config,
}

/// `GET /api/targets`.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let query = match Params::parse_repeating("/api/targets", query, &PARAMS, &REPEATABLE)
        .and_then(|params| parse(&params))
    {
        Ok(query) => query,
        Err(why) => return bad_request(why),
    };
    let rendered = tokio::task::spawn_blocking(move || {
        let fleet = shared.fleet();
        // The same query of the same fleet generation: open pages share one rendering.
        let key = format!("{:p} {query:?}", Arc::as_ptr(&fleet));
        shared.live().reuse(&key, || {
            render(&shared, &fleet, &query, SystemTime::now()).map(bytes::Bytes::from)
        })
    })
    .await;
    match rendered {
        Ok(Ok(body)) => {
            let mut response = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Ok(Err(err)) => crate::http::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the rows: {err}\n"),
        ),
        Err(err) => crate::http::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the renderer failed: {err}\n"),
        ),
    }
}

/// The query `params` ask for; for a bad one, the 400's reason.
fn parse(params: &Params) -> Result<RowQuery, String> {
    let states = crate::http::status::states(params)?;
    let mut labels = Vec::new();
    for value in params.get_all("label") {
        let (name, wanted) = value
            .split_once('=')
            .ok_or_else(|| format!("label takes NAME=VALUE (label=env=prod), not {value:?}"))?;
        labels.push((name.trim().to_owned(), wanted.trim().to_owned()));
    }
    let text = params
        .first("q")
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    let sort = match params.first("sort").unwrap_or("") {
        "" | "state" => Sort::State,
        "name" => Sort::Name,
        "config" => Sort::Config,
        other => {
            return Err(format!(
                "unknown sort {other:?}; sort takes state, name or config"
            ))
        }
    };
    let number = |name: &str, default: usize| -> Result<usize, String> {
        match params.first(name).filter(|v| !v.is_empty()) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| format!("{name} takes a whole number of rows, not {value:?}")),
        }
    };
    let offset = number("offset", 0)?;
    let limit = number("limit", DEFAULT_LIMIT)?;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(format!("limit takes 1 to {MAX_LIMIT} rows, not {limit}"));
    }
    Ok(RowQuery {
        states,
        labels,
        text,
        sort,
        offset,
        limit,
    })
}

impl RowQuery {
    /// True when `target` passes the label and text filters (which need no lock).
    fn takes(&self, target: &Watched) -> bool {
        let plan = &target.plan;
        self.labels
            .iter()
            .all(|(name, value)| plan.labels.get(name) == Some(value))
            && self.text.as_deref().is_none_or(|text| {
                contains_ignoring_case(&plan.name, text)
                    || contains_ignoring_case(&plan.address, text)
            })
    }
}

/// True when `haystack` holds `needle`, ASCII letters in any case; without allocating,
/// since it runs for every target of the fleet.
fn contains_ignoring_case(haystack: &str, needle: &str) -> bool {
    let (haystack, needle) = (haystack.as_bytes(), needle.as_bytes());
    needle.is_empty()
        || haystack
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle))
}

/// Targets by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    /// Up.
    pub(crate) up: usize,
    /// Down.
    pub(crate) down: usize,
    /// Unknown.
    pub(crate) unknown: usize,
}

/// The order of states in [`Sort::State`]: what needs a look first.
fn rank(health: Health) -> u8 {
    match health {
        Health::Down => 0,
        Health::Unknown => 1,
        Health::Up => 2,
    }
}

/// The answer to `query` over `fleet`, as JSON.
fn render(
    shared: &Shared,
    fleet: &Fleet,
    query: &RowQuery,
    now: SystemTime,
) -> serde_json::Result<Vec<u8>> {
    let mut counts = Counts::default();
    // (rank, config index) of every target that passes: 16 bytes a target.
    let mut matched: Vec<(u8, usize)> = Vec::new();
    for (index, target) in fleet.targets.iter().enumerate() {
        if !query.takes(target) {
            continue;
        }
        let health = target.state().health;
        match health {
            Health::Up => counts.up += 1,
            Health::Down => counts.down += 1,
            Health::Unknown => counts.unknown += 1,
        }
        if query
            .states
            .as_ref()
            .is_none_or(|states| states.contains(&health))
        {
            matched.push((rank(health), index));
        }
    }
    match query.sort {
        Sort::State => matched.sort_unstable(),
        Sort::Name => matched.sort_unstable_by(|a, b| {
            fleet.targets[a.1]
                .plan
                .name
                .cmp(&fleet.targets[b.1].plan.name)
        }),
        Sort::Config => {}
    }
    let page = matched
        .iter()
        .skip(query.offset)
        .take(query.limit)
        .map(|&(_, index)| &fleet.targets[index]);
    let mut rows = Vec::with_capacity(query.limit.min(matched.len()));
    for target in page {
        // The extras first, then the state: never two locks at once.
        let extras = extras::extras(shared, target, now);
        let state = target.state();
        rows.push(serde_json::to_value(Row::of(target, &state, &extras, now))?);
    }
    serde_json::to_vec(&Answer {
        now: Time(now),
        total: fleet.targets.len(),
        matched: matched.len(),
        counts,
        offset: query.offset,
        limit: query.limit,
        targets: rows,
    })
}

#[derive(Serialize)]
struct Answer {
    now: Time,
    total: usize,
    matched: usize,
    counts: Counts,
    offset: usize,
    limit: usize,
    targets: Vec<serde_json::Value>,
}

/// One row of the page.
#[derive(Serialize)]
struct Row<'a> {
    name: &'a str,
    address: &'a str,
    check: &'static str,
    labels: &'a BTreeMap<String, String>,
    state: &'static str,
    since: Time,
    last_check: Option<LastCheckJson<'a>>,
    /// The last check's time when it succeeded: its round trip.
    rtt_seconds: Option<f64>,
    uptime: Uptime,
    /// Each shaped as `/api/history`'s aggregates.
    last_hour: Vec<AggregateJson>,
    /// Newest first.
    transitions: Vec<TransitionJson<'a>>,
    muted: Option<MutedJson<'a>>,
}

impl<'a> Row<'a> {
    fn of(
        target: &'a Watched,
        state: &'a crate::state::TargetState,
        extras: &'a Extras,
        now: SystemTime,
    ) -> Row<'a> {
        let last = state.last_check.as_ref();
        let hour_ago = crate::state::minute_of(now).saturating_sub(59);
        Row {
            name: &target.plan.name,
            address: &target.plan.address,
            check: target.plan.check.kind().name(),
            labels: &target.plan.labels,
            state: state.health.name(),
            since: Time(state.since),
            last_check: last.map(LastCheckJson::of),
            rtt_seconds: last
                .filter(|last| last.outcome == crate::checks::Outcome::Ok)
                .map(|last| last.duration.as_secs_f64()),
            uptime: Uptime {
                hour: extras.uptime_1h,
                day: extras.uptime_24h,
                week: extras.uptime_7d,
            },
            last_hour: extras
                .last_hour
                .iter()
                .filter(|minute| minute.minute >= hour_ago)
                .map(AggregateJson::of)
                .collect(),
            transitions: state
                .transitions
                .iter()
                .rev()
                .take(TRANSITIONS_SHOWN)
                .map(TransitionJson::of)
                .collect(),
            muted: extras.muted.as_ref().map(|muted| match muted {
                Muted::Silenced { until } => MutedJson {
                    kind: "silenced",
                    until: Some(Time(*until)),
                    reason: None,
                },
                Muted::Maintenance { window, until } => MutedJson {
                    kind: "maintenance",
                    until: Some(Time(*until)),
                    reason: Some(window),
                },
            }),
        }
    }
}

#[derive(Serialize)]
struct Uptime {
    #[serde(rename = "1h")]
    hour: Option<f64>,
    #[serde(rename = "24h")]
    day: Option<f64>,
    #[serde(rename = "7d")]
    week: Option<f64>,
}

#[derive(Serialize)]
struct MutedJson<'a> {
    kind: &'static str,
    until: Option<Time>,
    reason: Option<&'a str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_matches_in_any_case() {
        assert!(contains_ignoring_case("Web-Frontend-1", "frontend"));
        assert!(contains_ignoring_case("x", ""));
        assert!(!contains_ignoring_case("db", "dba"));
    }
}
