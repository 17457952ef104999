//! `POST /api/silence?target=NAME&for=30m` and `GET /api/silences`.
//!
//! A silence holds back every notification of one target until it ends
//! ([`crate::sinks::alerts::Mutes`]); `for=0s` lifts it. It is kept in `--data-dir`
//! when there is one. The answer is JSON: the target and when its silence ends.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{bad_request, text, Params};
use crate::reload::Shared;
use crate::store::alerts::unix;

/// What `for` takes, for its 400.
const FOR_TAKES: &str =
    "for takes a duration with a unit, e.g. for=30m, for=2h or for=1h30m; for=0s lifts the silence";

/// `POST /api/silence`.
pub(super) async fn silence(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let params = match Params::parse_repeating("/api/silence", query, &["target", "for"], &[]) {
        Ok(params) => params,
        Err(why) => return bad_request(why),
    };
    let Some(target) = params.first("target").filter(|t| !t.is_empty()) else {
        return bad_request("target is missing: write POST /api/silence?target=NAME&for=30m");
    };
    let Some(written) = params.first("for").filter(|f| !f.is_empty()) else {
        return bad_request(format!("for is missing; {FOR_TAKES}"));
    };
    let duration = match humantime::parse_duration(written.trim()) {
        Ok(duration) => duration,
        Err(err) => {
            return bad_request(format!(
                "for={written:?} is not a duration ({err}); {FOR_TAKES}"
            ))
        }
    };
    if !shared.fleet().targets.iter().any(|t| t.plan.name == target) {
        return text(
            StatusCode::NOT_FOUND,
            format!("no target named {target:?}; GET /status lists every target\n"),
        );
    }
    let now = SystemTime::now();
    let until = (!duration.is_zero()).then(|| now + duration);
    let target = target.to_owned();
    let mutes = Arc::clone(&shared.alerts().mutes);
    let written = {
        let target = target.clone();
        // The store's write may wait on its lock: not on the HTTP runtime's thread.
        tokio::task::spawn_blocking(move || mutes.silence(&target, until)).await
    };
    match written {
        Ok(Ok(())) => {}
        Ok(Err(why)) => return text(StatusCode::INTERNAL_SERVER_ERROR, format!("{why}\n")),
        Err(err) => {
            return text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the silence was not recorded: {err}\n"),
            )
        }
    }
    match until {
        Some(until) => {
            tracing::info!(target = %target, "silenced until {}", humantime::format_rfc3339_seconds(until));
            json_answer(json!({ "target": target, "until": stamp(until) }))
        }
        None => {
            tracing::info!(target = %target, "silence lifted");
            json_answer(json!({ "target": target, "until": null }))
        }
    }
}

/// `GET /api/silences`: `{"silences": [{"target": NAME, "until": TIME}, ...]}`.
pub(super) async fn list(State(shared): State<Arc<Shared>>) -> Response {
    let silences: Vec<_> = shared
        .alerts()
        .mutes
        .silences(SystemTime::now())
        .into_iter()
        .map(|(target, until)| json!({ "target": target, "until": stamp(until) }))
        .collect();
    json_answer(json!({ "silences": silences }))
}

/// A time as `/status` writes one.
fn stamp(at: SystemTime) -> serde_json::Value {
    json!({
        "rfc3339": humantime::format_rfc3339_millis(at).to_string(),
        "unix": unix(at),
    })
}

fn json_answer(value: serde_json::Value) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{value}\n"),
    )
        .into_response()
}
