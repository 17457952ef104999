//! `GET /status[?state=STATE[,STATE...]][&target=NAME...]`: the query string read into a
//! [`Filter`], and the answer streamed by [`crate::sinks::status::render`].
//!
//! * `state`: `up`, `down` or `unknown` (any case), several separated by commas, or the
//!   parameter repeated. Anything else is a 400 that lists what `state` takes.
//! * `target`: one exact target name; repeated for several. Not split on commas: a name
//!   is any string (an address by default), and may hold one.
//!
//! Given together, a target is listed when it passes both. An empty value is no filter
//! (as a dashboard's empty variable means). A name that no target has is a 404 naming it;
//! an existing target in another state is simply not listed.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::{bad_request, body, text, Params};
use crate::reload::Shared;
use crate::sinks::status::Filter;
use crate::state::Health;

/// The parameters `/status` takes.
const PARAMS: [&str; 2] = ["target", "state"];

/// The states `?state=` takes, in the order the 400 lists them.
const STATES: [Health; 3] = [Health::Up, Health::Down, Health::Unknown];

/// What `?state=` takes, for its 400.
const STATE_TAKES: &str =
    "state takes up, down or unknown, several separated by commas (state=down,unknown)";

/// `GET /status`.
pub(super) async fn handle(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let filter = match Params::parse_repeating("/status", query, &PARAMS, &PARAMS)
        .and_then(|params| filter(&params))
    {
        Ok(filter) => filter,
        Err(why) => return bad_request(why),
    };
    let fleet = shared.fleet();
    let missing = filter.missing_names(&fleet);
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(|name| format!("{name:?}")).collect();
        return text(
            StatusCode::NOT_FOUND,
            format!(
                "no target named {}; GET /status lists every target\n",
                missing.join(", ")
            ),
        );
    }
    body::streamed(crate::sinks::status::CONTENT_TYPE, move |out| {
        crate::sinks::status::render(&fleet, &filter, out)
    })
}

/// The filter `params` ask for; for a state it does not know, the 400's reason.
fn filter(params: &Params) -> Result<Filter, String> {
    let names: HashSet<String> = params.get_all("target").map(str::to_owned).collect();
    Ok(Filter {
        states: states(params)?,
        names: (!names.is_empty()).then_some(names),
    })
}

/// The states `?state=` asks for (`None`: every state), as `/status` and `/api/targets`
/// read it; for a state it does not know, the 400's reason.
pub(super) fn states(params: &Params) -> Result<Option<Vec<Health>>, String> {
    let mut states: Option<Vec<Health>> = None;
    for value in params.get_all("state") {
        for item in value.split(',') {
            let item = item.trim();
            if item.is_empty() {
                return Err(format!("an empty state in {value:?}; {STATE_TAKES}"));
            }
            let health = STATES
                .into_iter()
                .find(|health| health.name().eq_ignore_ascii_case(item))
                .ok_or_else(|| format!("unknown state {item:?}; {STATE_TAKES}"))?;
            let states = states.get_or_insert_with(Vec::new);
            if !states.contains(&health) {
                states.push(health);
            }
        }
    }
    Ok(states)
}
