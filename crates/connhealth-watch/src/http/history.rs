//! `GET /api/history?target=NAME[&window=24h]`: one target's transitions and per-minute
//! aggregates over the window, as JSON ([`crate::sinks::history::render`]).
//!
//! * `target`: the target's exact name. A name neither the fleet nor the history (the
//!   file, with `--data-dir`) knows is a 404 naming it.
//! * `window`: how far back, a duration as the config writes them (`90m`, `24h`, `7d`);
//!   24 h by default, 30 days at most (what `--data-dir` keeps). Anything else is a 400
//!   that says what to write.
//!
//! With `--data-dir` the answer comes from `state.sqlite`: every transition in the window
//! and every minute. Without it, from memory: the last 100 transitions and the closed
//! minutes of the last hour that fall in the window. Either way the minute under way,
//! read from the target's state, is the last aggregate.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{bad_request, text, Params};
use crate::reload::Shared;
use crate::state::MinuteAggregate;
use crate::store::history::RETENTION;

/// The parameters `/api/history` takes.
const PARAMS: [&str; 2] = ["target", "window"];

/// The window when none is given.
const DEFAULT_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// What `window` takes, for its 400.
const WINDOW_TAKES: &str =
    "window takes a duration such as 1h, 24h or 7d, above 0 and at most 30d (the default is 24h)";

/// `GET /api/history`.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match Params::parse_repeating("/api/history", query, &PARAMS, &[]) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let Some(name) = params.first("target").filter(|name| !name.is_empty()) else {
        return bad_request(
            "give the target's name: /api/history?target=NAME[&window=24h] (GET /status lists every target)",
        );
    };
    let window = match params.first("window").filter(|w| !w.is_empty()) {
        None => DEFAULT_WINDOW,
        Some(given) => match humantime::parse_duration(given.trim()) {
            Ok(window) if !window.is_zero() && window <= RETENTION => window,
            Ok(_) => {
                return bad_request(format!("window {given:?} is out of range; {WINDOW_TAKES}"))
            }
            Err(err) => return bad_request(format!("window {given:?}: {err}; {WINDOW_TAKES}")),
        },
    };
    let name = name.to_owned();
    let now = SystemTime::now();
    let since = now.checked_sub(window).unwrap_or(SystemTime::UNIX_EPOCH);
    let live = shared
        .fleet()
        .targets
        .iter()
        .find(|target| target.plan.name == name)
        .cloned();
    let open = live.as_ref().and_then(|target| target.state().minute);
    let found = match shared.store() {
        Some(store) => {
            let store = Arc::clone(store);
            let read = {
                let name = name.clone();
                tokio::task::spawn_blocking(move || {
                    crate::store::history::window(&store.lock(), &name, since)
                        .map_err(|err| format!("cannot read {}: {err}", store.path().display()))
                })
            };
            match read.await {
                Ok(Ok(window)) => window.map(|w| (w.transitions, w.minutes)),
                Ok(Err(why)) => {
                    tracing::error!("/api/history: {why}");
                    return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n"));
                }
                Err(err) => {
                    return text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the history's reader failed: {err}\n"),
                    )
                }
            }
        }
        None => shared.history().since(&name, since),
    };
    let (transitions, mut minutes) = match found {
        Some(found) => found,
        None if live.is_some() => (Vec::new(), Vec::new()),
        None => {
            return text(
                StatusCode::NOT_FOUND,
                format!("no target named {name:?}; GET /status lists every target\n"),
            )
        }
    };
    if let Some(open) = open.filter(|open| open.start() + Duration::from_secs(60) > since) {
        add_open_minute(&mut minutes, open);
    }
    let mut body = Vec::with_capacity(256 + minutes.len() * 160 + transitions.len() * 200);
    if let Err(err) = crate::sinks::history::render(&name, &transitions, &minutes, &mut body) {
        return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{err}\n"));
    }
    (
        [(
            axum::http::header::CONTENT_TYPE,
            crate::sinks::status::CONTENT_TYPE,
        )],
        body,
    )
        .into_response()
}

/// Puts the minute under way last. The file may already hold part of it (what a daemon
/// stopped within the same minute counted): the two add up. A later one there (a clock
/// stepped back) leaves it out.
fn add_open_minute(minutes: &mut Vec<MinuteAggregate>, open: MinuteAggregate) {
    match minutes.last_mut() {
        Some(last) if last.minute == open.minute => last.merge(&open),
        Some(last) if last.minute > open.minute => {}
        _ => minutes.push(open),
    }
}
