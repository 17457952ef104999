//! `[alerts.alertmanager]`: Alertmanager's API v2 (`POST /api/v2/alerts`, a JSON array
//! of alerts). A down target is the alert `ConnhealthTargetDown` with the labels
//! `target`, `address`, `check` and the target's own; it is posted when the target goes
//! down and again every [`REFRESH`] while it stays down, each time with an `endsAt`
//! [`ENDS_AFTER`] ahead (Alertmanager resolves an alert that is not refreshed by then,
//! so a daemon that died leaves no alert firing forever), and posted resolved, `endsAt`
//! the time it came back, when it is up again.

use std::time::{Duration, SystemTime};

use http::Uri;
use serde_json::{json, Map, Value};

use super::notice::{Notice, Stamp};
use super::post::Poster;
use crate::state::Health;

/// The alert's name.
pub const ALERT_NAME: &str = "ConnhealthTargetDown";

/// How often firing alerts are posted again.
pub const REFRESH: Duration = Duration::from_secs(60);

/// How far ahead a firing alert's `endsAt` is set.
pub const ENDS_AFTER: Duration = Duration::from_secs(300);

/// POSTs each notice to Alertmanager's alerts API `url` as an alert, in one request:
/// firing for down, resolved for up (starting when the down notice it resolves, paired
/// with it, said).
pub(crate) fn send(
    poster: &Poster,
    url: &Uri,
    notices: Vec<(&Notice, Option<&Notice>)>,
) -> Result<(), String> {
    let now = SystemTime::now();
    let alerts: Vec<Value> = notices
        .into_iter()
        .map(|(notice, firing)| alert(notice, firing, now))
        .collect();
    poster.post(url, &[], Value::Array(alerts).to_string().into_bytes())
}

/// POSTs every firing alert again (one request).
pub(crate) fn refresh<'a>(
    poster: &Poster,
    url: &Uri,
    firing: impl Iterator<Item = &'a Notice>,
) -> Result<(), String> {
    let now = SystemTime::now();
    let alerts: Vec<Value> = firing.map(|notice| alert(notice, None, now)).collect();
    poster.post(url, &[], Value::Array(alerts).to_string().into_bytes())
}

/// One alert of Alertmanager's API v2.
fn alert(notice: &Notice, firing: Option<&Notice>, now: SystemTime) -> Value {
    let mut labels = Map::new();
    for (name, value) in &notice.labels {
        labels.insert(name.clone(), Value::from(value.as_str()));
    }
    labels.insert("target".into(), Value::from(notice.target.as_str()));
    labels.insert("address".into(), Value::from(notice.address.as_str()));
    labels.insert("check".into(), Value::from(notice.check.as_str()));
    labels.insert("alertname".into(), Value::from(ALERT_NAME));
    let (starts, ends) = match notice.health() {
        Health::Down => (
            notice.at.rfc3339.clone(),
            Stamp::of(now + ENDS_AFTER).rfc3339,
        ),
        _ => (
            firing.map_or_else(|| notice.at.rfc3339.clone(), |down| down.at.rfc3339.clone()),
            notice.at.rfc3339.clone(),
        ),
    };
    json!({
        "labels": labels,
        "annotations": {
            "summary": format!("{} ({}) is {}", notice.target, notice.address, notice.to),
            "description": notice.why,
        },
        "startsAt": starts,
        "endsAt": ends,
    })
}
