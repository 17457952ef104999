//! A notification: a transition as `/status` shows it (`target`, `address`, `check`,
//! `labels`, `from`, `to`, `at`, `why`), the webhook's body as it is, and what the
//! outbox keeps (as JSON) until a receiver took it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::state::{Health, Transition, Watched};
use crate::store::alerts::unix;

/// One transition of one target, for a receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Notice {
    /// The target's name: the `target` label.
    pub(crate) target: String,
    /// Its address (a URL for `http`).
    pub(crate) address: String,
    /// Its check kind.
    pub(crate) check: String,
    /// Its own labels.
    pub(crate) labels: BTreeMap<String, String>,
    /// `unknown`, `up` or `down`.
    pub(crate) from: String,
    /// `up` or `down`.
    pub(crate) to: String,
    /// When the target changed.
    pub(crate) at: Stamp,
    /// Why: "3 failures: refused".
    pub(crate) why: String,
    /// What the deciding check found, for a failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    /// The deciding check's time.
    #[serde(default)]
    pub(crate) check_seconds: f64,
}

/// A time, as `/status` writes one: `{"rfc3339": "...", "unix": 1796157699.12}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Stamp {
    /// RFC 3339, UTC, milliseconds.
    pub(crate) rfc3339: String,
    /// Unix seconds.
    pub(crate) unix: f64,
}

impl Stamp {
    pub(crate) fn of(at: SystemTime) -> Stamp {
        Stamp {
            rfc3339: humantime::format_rfc3339_millis(at).to_string(),
            unix: unix(at),
        }
    }

    pub(crate) fn time(&self) -> SystemTime {
        crate::store::alerts::from_unix(self.unix)
    }
}

impl Notice {
    /// `transition` of `target`.
    pub(crate) fn of(target: &Watched, transition: &Transition) -> Notice {
        Notice {
            target: target.plan.name.clone(),
            address: target.plan.address.clone(),
            check: target.plan.check.kind().name().to_owned(),
            labels: target.plan.labels.clone(),
            from: transition.from.name().to_owned(),
            to: transition.to.name().to_owned(),
            at: Stamp::of(transition.at),
            why: transition.why.clone(),
            detail: transition.detail.clone(),
            check_seconds: transition.check_time.as_secs_f64(),
        }
    }

    /// The state it tells of.
    pub(crate) fn health(&self) -> Health {
        if self.to == Health::Down.name() {
            Health::Down
        } else {
            Health::Up
        }
    }

    /// As JSON: the webhook's body, and the outbox's column.
    pub(crate) fn json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}
